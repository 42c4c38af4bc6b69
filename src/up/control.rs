//! The control socket (`state_dir/run/up.sock`): how `bluegreen deploy` and its kin, run
//! from another terminal or by `up`'s own trainer, ask a running `bluegreen up` to restart
//! a slot. That the socket answers is also how they know `up` runs this state folder.
//!
//! Both halves of the protocol live here. One request per connection, one line each way:
//! - `restart <slot>` is answered `ok` once the slot sent `READY=1`, or `error <why>`;
//! - `addresses` is answered `ok {"blue": "<endpoint>", "green": "<endpoint>", "public":
//!   "<addr>"}` (JSON, since a unix socket's path may hold spaces): the listening sockets `up`
//!   has held since it started, which a slot restart cannot move.

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::slots::Slots;
use crate::config::Config;
use crate::layout::Layout;
use crate::nginx::Nginx;
use crate::slot::Slot;
use crate::supervisor::{Supervisor, SupervisorError};
use crate::switch::{self, Endpoint};
use tracing::info;

/// The listening sockets `up` holds, by the config key that named them at its start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Addresses {
    pub blue: Endpoint,
    pub green: Endpoint,
    pub public: SocketAddr,
}

impl Addresses {
    /// What `up` binds for `config`: the slots' endpoints in its switch mode, and the public
    /// port.
    pub fn of(config: &Config) -> Addresses {
        Addresses {
            blue: switch::endpoint(config, Slot::Blue),
            green: switch::endpoint(config, Slot::Green),
            public: super::nginx::public_listen_addr(config),
        }
    }

    fn line(&self) -> String {
        serde_json::to_string(self).expect("addresses serialize")
    }

    fn parse(line: &str) -> Option<Addresses> {
        serde_json::from_str(line).ok()
    }
}

/// Answers requests on `listener` until the task is dropped.
pub async fn serve(listener: UnixListener, slots: Slots, held: Addresses) {
    let held = held.line();
    while let Ok((stream, _)) = listener.accept().await {
        let slots = slots.clone();
        let held = held.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if tokio::io::BufReader::new(read)
                .read_line(&mut line)
                .await
                .is_err()
            {
                return;
            }
            let answer = match line.trim().split_once(' ') {
                Some(("restart", name)) => match name.parse::<Slot>() {
                    Ok(slot) => {
                        info!("restarting {slot}, as asked on the control socket");
                        match slots.restart(slot).await {
                            Ok(()) => "ok".to_string(),
                            Err(why) => format!("error {why}"),
                        }
                    }
                    Err(e) => format!("error {e}"),
                },
                None if line.trim() == "addresses" => format!("ok {held}"),
                _ if line.trim().is_empty() => return,
                _ => format!("error unknown command {:?}", line.trim()),
            };
            let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

/// True when a `bluegreen up` answers on the control socket of this state folder.
pub fn is_running(layout: &Layout) -> bool {
    UnixStream::connect(layout.control_socket()).is_ok()
}

/// The client: a [`Supervisor`] that talks to a running `bluegreen up`.
pub struct Client {
    socket: PathBuf,
    nginx: Nginx,
    timeout: Duration,
}

impl Client {
    /// A client for the `up` of `layout`'s state folder, whose NGINX is `up`'s own.
    pub fn new(config: &Config, layout: &Layout) -> Client {
        Client {
            socket: layout.control_socket(),
            nginx: Nginx::local(config, layout),
            timeout: config.ready_timeout() + Duration::from_secs(15),
        }
    }
}

impl Client {
    /// Sends one request line; returns the answer line without its end.
    fn ask(&self, request: &str) -> Result<String, SupervisorError> {
        let control = |source: io::Error| SupervisorError::Control {
            path: self.socket.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(control)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(control)?;
        writeln!(stream, "{request}").map_err(control)?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .map_err(control)?;
        Ok(answer.trim_end().to_string())
    }
}

impl Supervisor for Client {
    fn restart(&self, slot: Slot) -> Result<(), SupervisorError> {
        let answer = self.ask(&format!("restart {slot}"))?;
        match answer.split_once(' ') {
            _ if answer == "ok" => Ok(()),
            Some(("error", why)) => Err(SupervisorError::NotReady {
                slot,
                why: why.to_string(),
            }),
            _ => Err(SupervisorError::NotReady {
                slot,
                why: format!("unexpected answer {answer:?} from bluegreen up"),
            }),
        }
    }

    /// `up` binds the slots' and the public socket once, at its start: a configuration that
    /// moves one of them cannot be applied by restarting slots.
    fn can_apply(&self, config: &Config) -> Result<(), SupervisorError> {
        let answer = self.ask("addresses")?;
        let held = answer
            .strip_prefix("ok ")
            .and_then(Addresses::parse)
            .ok_or_else(|| SupervisorError::Answer {
                answer: answer.clone(),
            })?;
        let wanted = Addresses::of(config);
        let public = (Endpoint::Tcp(held.public), Endpoint::Tcp(wanted.public));
        for (key, held, wanted) in [
            ("slots.blue", held.blue, wanted.blue),
            ("slots.green", held.green, wanted.green),
            ("public_port", public.0, public.1),
        ] {
            if held != wanted {
                // A TCP address where a unix socket was (or the other way round): the mode.
                let same_kind = matches!(
                    (&held, &wanted),
                    (Endpoint::Tcp(_), Endpoint::Tcp(_)) | (Endpoint::Unix(_), Endpoint::Unix(_))
                );
                let key = if same_kind { key } else { "nginx.switch" };
                return Err(SupervisorError::Moved { key, held, wanted });
            }
        }
        Ok(())
    }

    fn nginx(&self) -> &Nginx {
        &self.nginx
    }

    fn name(&self) -> &'static str {
        "bluegreen up"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_their_line() {
        let mut config = Config::default();
        let held = Addresses::of(&config);
        assert_eq!(Addresses::parse(&held.line()), Some(held));
        config.state_dir = "/var/lib/blue green".into();
        config.nginx.switch = switch::Mode::Socket;
        let held = Addresses::of(&config);
        assert_eq!(
            held.blue,
            Endpoint::Unix("/var/lib/blue green/sockets/blue.sock".into())
        );
        assert_eq!(Addresses::parse(&held.line()), Some(held));
        assert_eq!(
            Addresses::parse(r#"{"blue": "127.0.0.1:1", "green": "127.0.0.1:2"}"#),
            None
        );
    }
}
