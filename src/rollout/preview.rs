//! Who may reach the resting slot through NGINX with `X-Bluegreen-Preview: 1` (issue 11).
//!
//! NGINX decides, not the slots: the site's `geo` block lists this host's own addresses
//! (127.0.0.1, ::1) and includes `state_dir/nginx/preview.conf` for `nginx.preview_from`; a
//! `map` sends an allowed preview to `upstream bluegreen_resting`
//! (`crate::nginx::render_site`). A preview header from any other address is refused with a
//! 403 rather than ignored: a client that believes it is checking the candidate must not get
//! the active model's answer without being told.
//!
//! The list is an include, not part of the site, for the reason the dashboard's allow list is
//! one (`crate::dashboard::access`): the site is a conffile rendered once, and what changes
//! with the config is written by bluegreen (by `init`, which `up` and the package's postinst
//! run, and by `bluegreen restart`, which reloads NGINX when an include changed). Entries are
//! parsed as the dashboard's are, so the file holds only what the parser gave back.

use std::path::Path;

use ipnet::IpNet;

use crate::config::Config;
use crate::fsutil;
use crate::nginx::NginxError;

/// Addresses that may always preview, in the site itself: this host's own, as a `curl` on it
/// connects (to 127.0.0.1 or ::1, the kernel picks the same address as the source); the
/// dashboard's rule too (`crate::dashboard::access::LOCAL`).
pub const LOCAL: [&str; 2] = crate::dashboard::access::LOCAL;

/// One entry of `nginx.preview_from`, checked as `[dashboard] allow`'s are
/// ([`crate::dashboard::access::parse`]): an address or a network in CIDR notation, without
/// host bits. The error says what is wrong with it, for `ConfigError::Invalid`.
pub fn parse(entry: &str) -> Result<IpNet, String> {
    crate::dashboard::access::parse(entry)
}

/// The include's text, inside the site's `geo $bluegreen_preview_from`: one line per
/// configured network, `NET 1;`. Only valid entries reach here (the config is validated when
/// it is read); one that is not would be left out.
pub fn render(config: &Config) -> String {
    let mut text = String::from(
        "# Written by bluegreen from its config; `bluegreen restart` rewrites it after a change.\n\
         # Do not edit. Who besides this host may send `X-Bluegreen-Preview: 1` (issue 11),\n\
         # `nginx.preview_from`:\n",
    );
    for net in config
        .nginx
        .preview_from
        .iter()
        .filter_map(|e| parse(e).ok())
    {
        text.push_str(&format!("{net} 1;\n"));
    }
    text
}

/// Writes the include whole if its text differs from `render(config)`; returns whether it
/// did.
pub fn write(config: &Config, path: &Path) -> Result<bool, NginxError> {
    fsutil::write_if_changed(path, render(config).as_bytes()).map_err(NginxError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_blocks_are_allowed_as_nginx_spells_them() {
        let mut config = Config::default();
        config.nginx.preview_from = vec![
            "10.1.2.3".into(),
            "192.168.0.0/16".into(),
            "2001:db8::/32".into(),
        ];
        let lines: Vec<String> = render(&config)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        assert_eq!(
            lines,
            ["10.1.2.3/32 1;", "192.168.0.0/16 1;", "2001:db8::/32 1;"]
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "localhost",
            "10.0.0.1 ",
            "*",
            "192.168.7.9/16",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn write_says_whether_it_changed_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("preview.conf");
        let config = Config::from_toml("[nginx]\npreview_from = [\"10.0.0.0/8\"]").unwrap();
        assert!(write(&config, &path).unwrap());
        assert!(!write(&config, &path).unwrap());
        assert!(write(&Config::default(), &path).unwrap());
        assert!(!std::fs::read_to_string(&path).unwrap().contains("10.0.0.0"));
    }
}
