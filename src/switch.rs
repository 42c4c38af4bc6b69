//! How traffic moves from one slot to the other, and the one fact that says which slot is
//! active (issue 10, part 1). The mode is `[nginx] switch` in the config.
//!
//! - **`reload`** (the default): the NGINX include (`state_dir/nginx/upstream.conf`) lists the
//!   active slot's TCP address. A switch writes a new include, has `nginx -t` check it and
//!   reloads NGINX (`crate::deploy`). A reload makes NGINX's old workers close their idle
//!   keep-alive connections to *clients*, so a plain keep-alive client that sends a request at
//!   that instant loses it; NGINX 1.22 has no setting that avoids it.
//! - **`socket`**: each slot listens on a unix socket of its own (`state_dir/sockets/<slot>.sock`),
//!   and the include lists one fixed path, `state_dir/sockets/active.sock`, a symlink to the
//!   active slot's socket. NGINX opens every upstream connection with a new `socket()` and
//!   `connect()` on that path (`ngx_event_connect_peer` in NGINX's `src/event/ngx_event_connect.c`),
//!   and the kernel resolves the symlink at each `connect()`. So a switch renames a new
//!   symlink over the old one, atomically, and NGINX is not reloaded at all: no client
//!   connection is touched. What stays behind are NGINX's cached keep-alive connections to the
//!   old slot: NGINX matches a cached connection by its address
//!   (`ngx_http_upstream_get_keepalive_peer`), the same path for both slots, so it cannot tell
//!   them apart. The old slot closes them itself: it watches the link, and once the link names
//!   the other slot it closes its idle connections and ends every other one after its current
//!   answer (`Connection: close`; `cmd::serve`, `server::conn`). A request NGINX sent on a
//!   cached connection at the very instant the slot closed it fails before any answer, and
//!   NGINX sends it again on a new connection, which reaches the new slot
//!   (`proxy_next_upstream error … non_idempotent` in the site; an error on a cached
//!   connection even gives the request one more try, `ngx_http_upstream_next`).
//!
//! **The one fact.** The include is what NGINX routes by, so the active slot is read from it
//! ([`route`]): it lists a slot's address (reload mode), or the link (socket mode), whose
//! target names a slot's socket. One rule for both modes, and it stays true while an
//! installation moves from one mode to the other: until `bluegreen restart` (or a new `up`)
//! rewrites the include and NGINX loads it, the include still says where NGINX sends traffic.
//!
//! **Who may write.** The link is in a folder of its own, `state_dir/sockets/`, writable only
//! by the user that deploys (root under systemd, whose tmpfiles entry makes it `0750
//! root:www-data`: NGINX's workers may enter it and connect, nothing else may). `run/` would
//! not do: the trainer's user writes there.

use fs_err as fs;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::fsutil;
use crate::layout::Layout;
use crate::nginx;
use crate::slot::Slot;

/// How a switch moves traffic: `[nginx] switch` in the config (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Rewrite the include, `nginx -t`, SIGHUP (the default).
    #[default]
    Reload,
    /// Rename a symlink to the active slot's unix socket; NGINX is not reloaded.
    Socket,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Reload => "reload",
            Mode::Socket => "socket",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a slot listens: a loopback TCP address (reload mode), or the path of a unix socket
/// (socket mode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    /// As NGINX spells a `server`: `127.0.0.1:8081`, or `unix:/var/lib/…/blue.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The error for text that is neither `unix:/absolute/path` nor an `ip:port`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is neither unix:/absolute/path nor an address ip:port")]
pub struct BadEndpoint(String);

impl FromStr for Endpoint {
    type Err = BadEndpoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("unix:") {
            Some(path) if path.starts_with('/') => Ok(Endpoint::Unix(PathBuf::from(path))),
            Some(_) => Err(BadEndpoint(s.to_string())),
            None => s
                .parse()
                .map(Endpoint::Tcp)
                .map_err(|_| BadEndpoint(s.to_string())),
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Where `slot` listens in the configured mode.
pub fn endpoint(config: &Config, slot: Slot) -> Endpoint {
    match config.nginx.switch {
        Mode::Reload => Endpoint::Tcp(config.slot_addr(slot)),
        Mode::Socket => Endpoint::Unix(Layout::new(&config.state_dir).slot_socket(slot)),
    }
}

/// Why the active slot cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    // The I/O variants carry no path: the `fs-err` source names the file and the operation.
    #[error("cannot read the NGINX include")]
    ReadInclude(#[source] io::Error),
    #[error("cannot write the NGINX include")]
    WriteInclude(#[source] io::Error),
    #[error("cannot read the link to the active slot's socket")]
    ReadLink(#[source] io::Error),
    #[error("cannot point the link to the active slot's socket at {slot}")]
    WriteLink {
        slot: Slot,
        #[source]
        source: io::Error,
    },
    #[error("cannot point the link to the resting slot's socket at {slot}")]
    WriteRestingLink {
        slot: Slot,
        #[source]
        source: io::Error,
    },
    #[error("cannot write NGINX's shadow mirror files (issue 11)")]
    WriteShadow(#[source] io::Error),
    #[error("the NGINX include {path} names no known slot (expected `server` lines with {blue}, {green} or unix:{link}); hint: run `bluegreen restart` to write it again")]
    UnknownUpstream {
        path: PathBuf,
        blue: SocketAddr,
        green: SocketAddr,
        link: PathBuf,
    },
    #[error("the NGINX include {path} names both slots; hint: keep the `server` lines of one slot only, as bluegreen writes it")]
    BothSlots { path: PathBuf },
    #[error("the link {path} points at {target:?}, which is no slot's socket (blue.sock or green.sock); hint: `bluegreen rollback` or `bluegreen deploy` writes it again")]
    UnknownLink { path: PathBuf, target: PathBuf },
}

/// What the include routes by: which slot, and in which mode's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The active slot: all the traffic, or during a canary step (issue 11) the slot that
    /// keeps the rest of it.
    pub slot: Slot,
    /// The form of the include: a slot's address (`Reload`) or the link (`Socket`). It differs
    /// from the configured mode until a mode change has been applied (`bluegreen restart`).
    pub mode: Mode,
    /// During a canary step: the share of traffic (percent, 1–99) the other slot gets by
    /// its upstream weight. `None`: the active slot has it all.
    pub split: Option<u8>,
}

/// The slot NGINX routes to, read from the include (and, in socket mode, the link it names);
/// `None` before `bluegreen init` wrote them.
pub fn route(config: &Config, layout: &Layout) -> Result<Option<Route>, SwitchError> {
    let include = layout.upstream_include();
    let text = match fs::read_to_string(&include) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SwitchError::ReadInclude(source)),
    };
    let link = layout.active_socket();
    let unknown = || SwitchError::UnknownUpstream {
        path: include.clone(),
        blue: config.slots.blue,
        green: config.slots.green,
        link: link.clone(),
    };
    // Each `server` line of `upstream bluegreen_active` names a slot's address (Some(slot))
    // or the link (None), with its weight if it has one. `upstream bluegreen_resting` only
    // says which slot rests (a preview's and the shadow mirror's target; issue 11).
    let mut named: Vec<(Option<Slot>, Option<u32>)> = Vec::new();
    let mut resting = None;
    let mut block = "bluegreen_active";
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(rest) = line.strip_prefix("upstream ") {
            block = rest.split_whitespace().next().unwrap_or("");
            continue;
        }
        let Some(rest) = line.strip_prefix("server ") else {
            continue;
        };
        let mut words = rest.trim_end_matches(';').split_whitespace();
        let server = words.next().unwrap_or("");
        let weight = words
            .find_map(|w| w.strip_prefix("weight="))
            .and_then(|w| w.parse::<u32>().ok());
        let this = match server.parse::<Endpoint>() {
            Ok(Endpoint::Tcp(addr)) => Some(config.slot_at(addr).ok_or_else(unknown)?),
            Ok(Endpoint::Unix(path)) if path == link => None,
            Ok(Endpoint::Unix(_)) if block == "bluegreen_resting" => None,
            _ => return Err(unknown()),
        };
        match block {
            "bluegreen_resting" => resting = this,
            _ => named.push((this, weight)),
        }
    }
    let mut slots: Vec<Option<Slot>> = Vec::new();
    for (slot, _) in &named {
        if !slots.contains(slot) {
            slots.push(*slot);
        }
    }
    let (first, split) = match slots.as_slice() {
        [] => return Err(unknown()),
        [one] => (*one, None),
        [Some(a), Some(b)] if named.iter().all(|(_, w)| w.is_some()) => {
            // A canary step: the weights say the share; the slot `bluegreen_resting` names
            // is the candidate, and the other one is active.
            let weight = |slot: Slot| -> u64 {
                named
                    .iter()
                    .filter(|(s, _)| *s == Some(slot))
                    .map(|(_, w)| u64::from(w.unwrap_or(1)))
                    .sum()
            };
            let (active, candidate) = match resting {
                Some(r) if r == *a => (*b, *a),
                Some(_) => (*a, *b),
                None if weight(*a) >= weight(*b) => (*a, *b),
                None => (*b, *a),
            };
            let total = weight(active) + weight(candidate);
            let share = (100 * weight(candidate) + total / 2) / total.max(1);
            (Some(active), Some(share.clamp(1, 99) as u8))
        }
        _ => return Err(SwitchError::BothSlots { path: include }),
    };
    match first {
        Some(slot) => Ok(Some(Route {
            slot,
            mode: Mode::Reload,
            split,
        })),
        None => Ok(read_link(layout)?.map(|slot| Route {
            slot,
            mode: Mode::Socket,
            split: None,
        })),
    }
}

/// The slot the include routes to (see [`route`]).
pub fn active(config: &Config, layout: &Layout) -> Result<Option<Slot>, SwitchError> {
    Ok(route(config, layout)?.map(|r| r.slot))
}

/// The slot whose socket the link names; `None` when there is no link.
fn read_link(layout: &Layout) -> Result<Option<Slot>, SwitchError> {
    let path = layout.active_socket();
    let target = match fs::read_link(&path) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SwitchError::ReadLink(source)),
    };
    Slot::ALL
        .into_iter()
        .find(|slot| target == link_target(*slot))
        .map(Some)
        .ok_or(SwitchError::UnknownLink { path, target })
}

/// The link's target for `slot`: relative, so that the state folder can move.
fn link_target(slot: Slot) -> PathBuf {
    PathBuf::from(format!("{slot}.sock"))
}

/// The include for the configured mode: all traffic to `slot` (its address, or the link),
/// and `upstream bluegreen_resting` naming the other slot (its address, or the resting link).
pub fn render_include(config: &Config, slot: Slot) -> String {
    match config.nginx.switch {
        Mode::Reload => nginx::render_include(
            &[(config.slot_addr(slot).to_string(), None)],
            &config.slot_addr(slot.other()).to_string(),
            &format!("active slot: {slot}"),
        ),
        Mode::Socket => {
            let layout = Layout::new(&config.state_dir);
            let link = layout.active_socket();
            nginx::render_include(
                &[(Endpoint::Unix(link.clone()).to_string(), None)],
                &Endpoint::Unix(layout.resting_socket()).to_string(),
                &format!(
                    "the active slot is the one whose socket {} points at (nginx.switch = \"socket\")",
                    link.display()
                ),
            )
        }
    }
}

/// The include of a canary step (issue 11, reload mode only): `stable` keeps `100 - percent`
/// of the traffic and the other slot gets `percent`, by the upstream weights of their
/// `server` lines; `upstream bluegreen_resting` still names the candidate.
pub fn render_split(config: &Config, stable: Slot, percent: u8) -> String {
    let candidate = stable.other();
    nginx::render_include(
        &[
            (
                config.slot_addr(stable).to_string(),
                Some(100 - u32::from(percent)),
            ),
            (
                config.slot_addr(candidate).to_string(),
                Some(u32::from(percent)),
            ),
        ],
        &config.slot_addr(candidate).to_string(),
        &format!("active slot: {stable}; canary: {percent}% to {candidate}"),
    )
}

/// Makes `slot` the active one in the configured mode, each file written whole: in reload
/// mode the include; in socket mode the link (and the resting link), then the include if it
/// is not socket mode's yet. The shadow mirror is turned off too (issue 11): a switch ends
/// any rollout phase. Returns whether the include or the shadow file changed, in which case
/// NGINX must reload to follow; a link alone needs nothing from NGINX.
pub fn write(config: &Config, layout: &Layout, slot: Slot) -> Result<bool, SwitchError> {
    if config.nginx.switch == Mode::Socket {
        fsutil::swap_symlink(&link_target(slot), &layout.active_socket())
            .map_err(|source| SwitchError::WriteLink { slot, source })?;
        // The resting slot's link: where a preview and the shadow mirror go (issue 11).
        let resting = slot.other();
        fsutil::swap_symlink(&link_target(resting), &layout.resting_socket()).map_err(
            |source| SwitchError::WriteRestingLink {
                slot: resting,
                source,
            },
        )?;
    }
    let include = write_include(layout, &render_include(config, slot))?;
    let shadow = set_shadow(layout, None)?;
    Ok(include || shadow)
}

/// Writes the include of a canary step (see [`render_split`]); returns whether it changed.
pub fn write_split(
    config: &Config,
    layout: &Layout,
    stable: Slot,
    percent: u8,
) -> Result<bool, SwitchError> {
    write_include(layout, &render_split(config, stable, percent))
}

fn write_include(layout: &Layout, text: &str) -> Result<bool, SwitchError> {
    let include = layout.upstream_include();
    if fs::read_to_string(&include).is_ok_and(|now| now == text) {
        return Ok(false);
    }
    fsutil::write_atomic(&include, text.as_bytes()).map_err(SwitchError::WriteInclude)?;
    Ok(true)
}

/// Turns NGINX's shadow mirror on, copying `Some(percent)` of live requests to the
/// candidate, or off with `None` (issue 11): the share file, which the site includes in the
/// http context ([`nginx::render_shadow_share`]), and the file the site includes in its
/// `location /`, holding `mirror` while a shadow phase runs and nothing else otherwise.
/// `percent` is `rollout.shadow_percent`, validated by the config. Both are written before
/// NGINX reloads, so a changed share takes effect at the next shadow phase without a
/// `bluegreen restart`. Returns whether either changed (NGINX must reload to follow).
pub fn set_shadow(layout: &Layout, percent: Option<f64>) -> Result<bool, SwitchError> {
    let share = write_file(
        &layout.shadow_share_conf(),
        &nginx::render_shadow_share(percent),
    )?;
    let mirror = write_file(
        &layout.shadow_conf(),
        &nginx::render_shadow(percent.is_some()),
    )?;
    Ok(share || mirror)
}

/// Whether the shadow file mirrors requests now; false when there is none.
pub fn shadow_on(layout: &Layout) -> bool {
    fs::read_to_string(layout.shadow_conf()).is_ok_and(|text| text == nginx::render_shadow(true))
}

fn write_file(path: &Path, text: &str) -> Result<bool, SwitchError> {
    if fs::read_to_string(path).is_ok_and(|now| now == text) {
        return Ok(false);
    }
    fsutil::write_atomic(path, text.as_bytes()).map_err(SwitchError::WriteShadow)?;
    Ok(true)
}

/// Brings the NGINX files of a state folder written by an older bluegreen up to this one's
/// form, traffic staying where it is: an include without `upstream bluegreen_resting` (which
/// the site now names) is written again for the same active slot, a missing shadow file is
/// written off, and a missing share file is written for the shadow file: all requests
/// copied if it mirrors (a shadow phase begun by an older bluegreen, which copied them all),
/// none otherwise. `bluegreen init` (so the package's postinst) and `up` call it; a canary
/// split or a shadow phase in progress is left as it is.
pub fn upgrade(config: &Config, layout: &Layout) -> Result<(), SwitchError> {
    if !layout.shadow_conf().exists() {
        set_shadow(layout, None)?;
    }
    if !layout.shadow_share_conf().exists() {
        let all = shadow_on(layout).then_some(100.0);
        write_file(
            &layout.shadow_share_conf(),
            &nginx::render_shadow_share(all),
        )?;
    }
    let text = fs::read_to_string(layout.upstream_include()).unwrap_or_default();
    if text.is_empty() || text.contains("upstream bluegreen_resting") {
        return Ok(());
    }
    if let Some(route) = route(config, layout)? {
        if route.mode == config.nginx.switch {
            write(config, layout, route.slot)?;
        }
    }
    Ok(())
}

/// How many connections to the unix socket bound at `path` are open: accepted ones and those
/// waiting in its backlog, whoever made them. The listening socket itself is not counted.
///
/// Read from `/proc/self/net/unix` (the `self` form: `ProcSubset=pid` in a unit hides
/// `/proc/net`), where every socket of a connection accepted on a bound socket carries the
/// listener's path, from `connect()` on (Linux's `unix_stream_connect` gives the new socket
/// the listener's address). So once this is 0 after a switch, no connection to the old slot
/// is left, and none can come: new ones resolve the link to the new slot.
pub fn connections(path: &Path) -> io::Result<usize> {
    let table = fs::read_to_string("/proc/self/net/unix")?;
    Ok(count_connected(&table, path))
}

/// The parsing behind [`connections`]. Each line is `Num RefCount Protocol Flags Type St Inode
/// Path` (`unix_seq_show` in Linux's `net/unix/af_unix.c`). The listener is the one socket
/// with `__SO_ACCEPTCON` (00010000) in its flags; every other socket on the path is a
/// connection, accepted (St 03, SS_CONNECTED) or waiting in the backlog (St 02, inode 0).
/// Inode is printed `%5lu`, padded on its left, so the path starts one space after it.
fn count_connected(table: &str, path: &Path) -> usize {
    let want = path.as_os_str().to_string_lossy();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let mut rest = *line;
            let mut fields = Vec::with_capacity(7);
            for _ in 0..7 {
                rest = rest.trim_start();
                let end = rest.find(' ').unwrap_or(rest.len());
                fields.push(&rest[..end]);
                rest = &rest[end..];
            }
            fields[3] != "00010000" && rest.strip_prefix(' ') == Some(want.as_ref())
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, mode: Mode) -> Config {
        let mut config = Config::default();
        config.state_dir = dir.to_path_buf();
        config.nginx.switch = mode;
        config
    }

    #[test]
    fn each_mode_writes_what_the_other_reads() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        fs::create_dir_all(layout.nginx_dir()).unwrap();
        fs::create_dir_all(layout.sockets_dir()).unwrap();
        let reload = config(dir.path(), Mode::Reload);
        let socket = config(dir.path(), Mode::Socket);
        assert_eq!(route(&reload, &layout).unwrap(), None);
        for slot in Slot::ALL {
            for (writer, mode) in [(&reload, Mode::Reload), (&socket, Mode::Socket)] {
                write(writer, &layout, slot).unwrap();
                // Whatever the configured mode, the include says where NGINX routes.
                for reader in [&reload, &socket] {
                    assert_eq!(
                        route(reader, &layout).unwrap(),
                        Some(Route {
                            slot,
                            mode,
                            split: None
                        }),
                        "{mode} wrote {slot}"
                    );
                }
            }
        }
        // In socket mode a flip is the link alone; the include stays as it is.
        assert!(!write(&socket, &layout, Slot::Blue).unwrap());
        assert!(!write(&socket, &layout, Slot::Green).unwrap());
        assert_eq!(
            fs::read_link(layout.active_socket()).unwrap(),
            PathBuf::from("green.sock")
        );
        assert!(write(&reload, &layout, Slot::Green).unwrap());
    }

    #[test]
    fn the_include_lists_the_slot_or_the_link_once_per_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let link = format!("unix:{}/sockets/active.sock", dir.path().display());
        for (mode, server) in [
            (Mode::Reload, "127.0.0.1:8082"),
            (Mode::Socket, link.as_str()),
        ] {
            let text = render_include(&config(dir.path(), mode), Slot::Green);
            let (active, resting) = text.split_once("upstream bluegreen_resting").unwrap();
            let servers: Vec<&str> = active
                .lines()
                .filter(|l| l.trim_start().starts_with("server "))
                .collect();
            assert_eq!(servers.len(), nginx::SERVER_LINES, "{text}");
            let line = format!("server {server} max_fails=0;");
            assert!(servers.iter().all(|l| l.trim() == line), "{text}");
            // The resting slot, where previews and the shadow mirror go (issue 11).
            let other = match mode {
                Mode::Reload => "127.0.0.1:8081".to_string(),
                Mode::Socket => format!("unix:{}/sockets/resting.sock", dir.path().display()),
            };
            assert!(
                resting.contains(&format!("server {other} max_fails=0;")),
                "{text}"
            );
        }
    }

    #[test]
    fn a_canary_split_is_read_back_with_its_share_and_undone_by_a_switch() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        fs::create_dir_all(layout.nginx_dir()).unwrap();
        let reload = config(dir.path(), Mode::Reload);
        write(&reload, &layout, Slot::Blue).unwrap();
        for percent in [1, 10, 50, 99] {
            assert!(write_split(&reload, &layout, Slot::Blue, percent).unwrap());
            assert_eq!(
                route(&reload, &layout).unwrap(),
                Some(Route {
                    slot: Slot::Blue,
                    mode: Mode::Reload,
                    split: Some(percent)
                }),
                "{}",
                render_split(&reload, Slot::Blue, percent)
            );
        }
        assert!(set_shadow(&layout, Some(10.0)).unwrap());
        assert!(shadow_on(&layout));
        // A switch puts all traffic on one slot and turns the mirror off.
        assert!(write(&reload, &layout, Slot::Green).unwrap());
        assert!(!shadow_on(&layout));
        assert_eq!(
            route(&reload, &layout).unwrap().map(|r| (r.slot, r.split)),
            Some((Slot::Green, None))
        );
    }

    #[test]
    fn an_include_of_an_older_version_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        fs::create_dir_all(layout.nginx_dir()).unwrap();
        let reload = config(dir.path(), Mode::Reload);
        let old = "upstream bluegreen_active {\n    server 127.0.0.1:8082 max_fails=0;\n}\n";
        fs::write(layout.upstream_include(), old).unwrap();
        upgrade(&reload, &layout).unwrap();
        let text = fs::read_to_string(layout.upstream_include()).unwrap();
        assert!(text.contains("upstream bluegreen_resting"), "{text}");
        assert_eq!(route(&reload, &layout).unwrap().unwrap().slot, Slot::Green);
        assert!(layout.shadow_conf().exists());
        assert!(layout.shadow_share_conf().exists());
    }

    #[test]
    fn a_broken_include_or_link_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        fs::create_dir_all(layout.nginx_dir()).unwrap();
        fs::create_dir_all(layout.sockets_dir()).unwrap();
        let socket = config(dir.path(), Mode::Socket);
        let include = layout.upstream_include();
        fs::write(
            &include,
            "upstream bluegreen_active { server 127.0.0.1:9999; }",
        )
        .unwrap();
        let err = route(&socket, &layout).unwrap_err().to_string();
        assert!(
            err.contains("names no known slot") && err.contains("hint"),
            "{err}"
        );
        let both = render_include(&config(dir.path(), Mode::Reload), Slot::Green).replacen(
            "127.0.0.1:8082",
            "127.0.0.1:8081",
            1,
        );
        fs::write(&include, both).unwrap();
        let err = route(&socket, &layout).unwrap_err().to_string();
        assert!(err.contains("names both slots"), "{err}");
        // The include names the link, which is not there yet: no slot is active.
        fs::write(&include, render_include(&socket, Slot::Blue)).unwrap();
        assert_eq!(route(&socket, &layout).unwrap(), None);
        std::os::unix::fs::symlink("red.sock", layout.active_socket()).unwrap();
        let err = route(&socket, &layout).unwrap_err().to_string();
        assert!(
            err.contains("red.sock") && err.contains("no slot's socket"),
            "{err}"
        );
    }

    #[test]
    fn endpoints_print_as_nginx_spells_them_and_parse_back() {
        for text in [
            "127.0.0.1:8081",
            "[::1]:8082",
            "unix:/var/lib/bluegreen/sockets/blue.sock",
        ] {
            let endpoint: Endpoint = text.parse().unwrap();
            assert_eq!(endpoint.to_string(), text);
        }
        for bad in ["unix:relative.sock", "localhost", ""] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn connections_count_connected_sockets_on_the_path_only() {
        // As Linux prints it: a listener (flags 00010000, St 01), a connection accepted on it
        // (St 03) and one waiting in its backlog (St 02, inode 0), a connection to another
        // socket, a client end (no path), and a path that only begins like ours.
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 31337 /s/blue.sock\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 31338 /s/blue.sock\n\
            0000000000000000: 00000003 00000000 00000000 0001 02     0 /s/blue.sock\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 31340 /s/green.sock\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 31341\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 31342 /s/blue.sock.old\n";
        assert_eq!(count_connected(table, Path::new("/s/blue.sock")), 2);
        assert_eq!(count_connected(table, Path::new("/s/green.sock")), 1);
        assert_eq!(count_connected(table, Path::new("/s/none.sock")), 0);
    }

    #[test]
    fn connections_see_a_real_connection_come_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(connections(&path).unwrap(), 0);
        let client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        // Waiting in the backlog counts already.
        assert_eq!(connections(&path).unwrap(), 1);
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(connections(&path).unwrap(), 1);
        drop(accepted);
        drop(client);
        assert_eq!(connections(&path).unwrap(), 0);
    }
}
