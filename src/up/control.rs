//! The control socket (`state_dir/run/up.sock`): how `bluegreen deploy` and its kin, run
//! from another terminal or by `up`'s own trainer, ask a running `bluegreen up` to restart
//! a slot. That the socket answers is also how they know `up` runs this state folder.
//!
//! Both halves of the protocol live here. One request per connection, one line each way:
//! `restart <slot>` is answered `ok` once the slot sent `READY=1`, or `error <why>`.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::say;
use super::slots::Slots;
use crate::config::Config;
use crate::layout::Layout;
use crate::nginx::Nginx;
use crate::slot::Slot;
use crate::supervisor::{Supervisor, SupervisorError};

/// Answers requests on `listener` until the task is dropped.
pub async fn serve(listener: UnixListener, slots: Slots) {
    while let Ok((stream, _)) = listener.accept().await {
        let slots = slots.clone();
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
                        say(&format!(
                            "restarting {slot}, as asked on the control socket"
                        ));
                        match slots.restart(slot).await {
                            Ok(()) => "ok".to_string(),
                            Err(why) => format!("error {why}"),
                        }
                    }
                    Err(e) => format!("error {e}"),
                },
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
    pub fn new(config: &Config, layout: &Layout) -> Client {
        Client {
            socket: layout.control_socket(),
            nginx: Nginx::local(config, layout),
            timeout: config.ready_timeout() + Duration::from_secs(15),
        }
    }
}

impl Supervisor for Client {
    fn restart(&self, slot: Slot) -> Result<(), SupervisorError> {
        let control = |source: io::Error| SupervisorError::Control {
            path: self.socket.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(control)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(control)?;
        writeln!(stream, "restart {slot}").map_err(control)?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .map_err(control)?;
        match answer.trim_end().split_once(' ') {
            _ if answer.trim_end() == "ok" => Ok(()),
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

    fn nginx(&self) -> &Nginx {
        &self.nginx
    }

    fn name(&self) -> &'static str {
        "bluegreen up"
    }
}
