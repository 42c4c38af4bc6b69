//! The two slots, blue and green: every place that means a colour uses [`Slot`].
//!
//! A slot is a name for one inference server and its model symlink; which slot is
//! *active* is not stored here but read from the NGINX include (see `nginx`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the two inference servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    Blue,
    Green,
}

impl Slot {
    pub const ALL: [Slot; 2] = [Slot::Blue, Slot::Green];

    /// The slot that is not `self`.
    pub fn other(self) -> Slot {
        match self {
            Slot::Blue => Slot::Green,
            Slot::Green => Slot::Blue,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Blue => "blue",
            Slot::Green => "green",
        }
    }

    /// The systemd unit that runs this slot.
    pub fn unit(self) -> String {
        format!("bluegreen@{}.service", self.as_str())
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The error for a colour that is neither blue nor green.
#[derive(Debug, thiserror::Error)]
#[error("unknown slot {0:?}: expected \"blue\" or \"green\"")]
pub struct UnknownSlot(String);

impl FromStr for Slot {
    type Err = UnknownSlot;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "blue" => Ok(Slot::Blue),
            "green" => Ok(Slot::Green),
            other => Err(UnknownSlot(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_flips_and_names_round_trip() {
        for slot in Slot::ALL {
            assert_ne!(slot.other(), slot);
            assert_eq!(slot.other().other(), slot);
            assert_eq!(slot.as_str().parse::<Slot>().unwrap(), slot);
        }
        assert_eq!(Slot::Green.unit(), "bluegreen@green.service");
        let err = "red".parse::<Slot>().unwrap_err().to_string();
        assert!(err.contains("\"red\""), "{err}");
    }
}
