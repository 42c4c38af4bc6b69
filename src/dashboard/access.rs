//! Who may see the dashboard: this host (127.0.0.1, ::1) and the networks in
//! `[dashboard] allow`; NGINX answers anyone else 403 in JSON (issue 12).
//!
//! NGINX enforces it, before any slot sees the request (`allow`/`deny` in the site's `/-`
//! location, ngx_http_access_module). The site is a conffile that `bluegreen nginx-site`
//! renders once, so what changes with the config lives in an include that bluegreen writes,
//! `state_dir/nginx/dashboard.conf`: the `allow` lines, and the locations through which the
//! page reaches each slot's own counters, whose addresses follow `nginx.switch` (a TCP port,
//! or a unix socket). It is written whole by `init` (which the package's postinst runs
//! before it reloads NGINX) and by `up` at every start; `bluegreen restart`, which applies a
//! config change, rewrites it and reloads NGINX when it changed (`crate::site::apply`).
//!
//! The values end up in NGINX's configuration, so they are parsed, not passed through: each
//! is an IPv4 or IPv6 address or network ([`parse`]), and the file holds only what the parser
//! gave back. A network with host bits set (`10.0.0.1/8`) is refused rather than silently
//! widened, as NGINX would do with a warning.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use crate::config::Config;
use crate::fsutil;
use crate::nginx::NginxError;
use crate::slot::Slot;
use crate::switch::{self, Endpoint};

/// Addresses that may always see the dashboard: this host's own, as a browser or `curl` on
/// it connects (to 127.0.0.1 or ::1, the kernel picks the same address as the source).
pub const LOCAL: [&str; 2] = ["127.0.0.1", "::1"];

/// One entry of `[dashboard] allow`, checked: an address (`192.0.2.7`, `2001:db8::1`) or a
/// network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`). The error says what is wrong
/// with it, for `ConfigError::Invalid`.
pub fn parse(entry: &str) -> Result<IpNet, String> {
    let entry_shown = format!("{entry:?}");
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    let Some((addr, prefix)) = entry.split_once('/') else {
        return Err(format!(
            "{entry_shown} is not an IP address or network; write an address (192.0.2.7) or a network (10.0.0.0/8); host names are not allowed"
        ));
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{entry_shown}: {addr:?} is not an IPv4 or IPv6 address"))?;
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= bits).ok_or_else(|| {
        format!("{entry_shown}: the prefix length must be a number from 0 to {bits}")
    })?;
    let net = IpNet::new(addr, prefix).map_err(|e| format!("{entry_shown}: {e}"))?;
    if net.trunc() != net {
        return Err(format!(
            "{entry_shown} has host bits set after /{prefix}; write {} for the network, or {addr} alone for one address",
            net.trunc()
        ));
    }
    Ok(net)
}

/// The include's text, inside the site's `/-` location: one `allow` line per configured
/// network, then a location per slot for its counters (`/-/slots/<slot>/api/slot`, which
/// inherit the rules). Only valid entries reach here (the config is validated when it is
/// read); one that is not would be left out.
pub fn render(config: &Config) -> String {
    let mut text = String::from(
        "# Written by bluegreen from its config; `bluegreen restart` rewrites it after a change.\n\
         # Do not edit. Who besides this host may see the dashboard (/-/), `[dashboard] allow`;\n\
         # the site denies everyone else:\n",
    );
    for net in config.dashboard.allow.iter().filter_map(|e| parse(e).ok()) {
        text.push_str(&format!("allow {net};\n"));
    }
    text.push_str("\n# Each slot's own counters, the resting one's too, for the traffic charts:\n");
    for slot in Slot::ALL {
        // NGINX spells a unix socket `http://unix:PATH:/uri` (the proxy_pass docs).
        let target = match switch::endpoint(config, slot) {
            Endpoint::Tcp(addr) => format!("http://{addr}"),
            Endpoint::Unix(path) => format!("http://unix:{}:", path.display()),
        };
        text.push_str(&format!(
            "location = /-/slots/{slot}/api/slot {{\n    proxy_pass {target}/-/api/slot;\n}}\n"
        ));
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
    fn addresses_and_networks_of_both_families_are_allowed() {
        for (entry, net) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("192.0.2.7", "192.0.2.7/32"),
            ("192.0.2.7/32", "192.0.2.7/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:db8::1", "2001:db8::1/128"),
        ] {
            assert_eq!(parse(entry).unwrap().to_string(), net, "{entry}");
        }
    }

    #[test]
    fn the_include_allows_exactly_the_configured_networks_and_reaches_each_slot() {
        let config =
            Config::from_toml("[dashboard]\nallow = [\"10.0.0.0/8\", \"2001:db8::1\"]").unwrap();
        let text = render(&config);
        let allows: Vec<&str> = text.lines().filter(|l| l.starts_with("allow ")).collect();
        assert_eq!(allows, ["allow 10.0.0.0/8;", "allow 2001:db8::1/128;"]);
        assert!(
            text.contains("location = /-/slots/green/api/slot {\n    proxy_pass http://127.0.0.1:8082/-/api/slot;\n}"),
            "{text}"
        );
        assert!(!render(&Config::default()).contains("allow "));
        let socket = Config::from_toml("[nginx]\nswitch = \"socket\"").unwrap();
        assert!(
            render(&socket).contains(
                "proxy_pass http://unix:/var/lib/bluegreen/sockets/blue.sock:/-/api/slot;"
            ),
            "{}",
            render(&socket)
        );
    }

    #[test]
    fn write_says_whether_it_changed_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dashboard-allow.conf");
        let config = Config::from_toml("[dashboard]\nallow = [\"10.0.0.0/8\"]").unwrap();
        assert!(write(&config, &path).unwrap());
        assert!(!write(&config, &path).unwrap());
        assert!(write(&Config::default(), &path).unwrap());
        assert!(!std::fs::read_to_string(&path).unwrap().contains("allow 10"));
    }
}
