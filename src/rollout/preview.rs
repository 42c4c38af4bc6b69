//! Who may reach the resting slot through NGINX with `X-Bluegreen-Preview: 1` (issue 11).
//!
//! NGINX decides, not the slots: the site's `geo` block lists loopback and
//! `nginx.preview_from`, and a `map` sends an allowed preview to `upstream bluegreen_resting`
//! (`crate::nginx::render_site`). A preview header from any other address is refused with a
//! 403 rather than ignored: a client that believes it is checking the candidate must not get
//! the active model's answer without being told.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::Config;

/// An entry of `nginx.preview_from`: an address or a CIDR block; `None` if it is neither.
pub fn parse_from(entry: &str) -> Option<IpNet> {
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Every block allowed to preview, as NGINX's `geo` spells it: loopback (IPv4 and IPv6)
/// first, then `nginx.preview_from` (entries that do not parse are the config check's to
/// refuse; they are left out here).
pub fn allowed(config: &Config) -> Vec<String> {
    let mut nets = vec!["127.0.0.0/8".to_string(), "::1/128".to_string()];
    for entry in &config.nginx.preview_from {
        if let Some(net) = parse_from(entry) {
            let net = net.trunc().to_string();
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
    }
    nets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_blocks_are_allowed_as_nginx_spells_them() {
        let mut config = Config::default();
        config.nginx.preview_from = vec![
            "10.1.2.3".into(),
            "192.168.7.9/16".into(),
            "2001:db8::/32".into(),
        ];
        assert_eq!(
            allowed(&config),
            [
                "127.0.0.0/8",
                "::1/128",
                "10.1.2.3/32",
                "192.168.0.0/16",
                "2001:db8::/32"
            ]
        );
        for bad in ["", "10.0.0.0/33", "localhost", "10.0.0.1 ", "*"] {
            assert!(parse_from(bad).is_none(), "{bad:?}");
        }
    }
}
