//! The client address a request is attributed to: the TCP peer, or, when that peer is a
//! configured trusted proxy, the nearest untrusted address in `Forwarded` (RFC 7239) or
//! `X-Forwarded-For`. Headers from anyone else are ignored: a client cannot choose the address
//! its refusals are counted against.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// The TCP peer of a connection, inserted into each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ConnectedPeer(pub SocketAddr);

/// An address or CIDR block (`10.0.0.0/8`, `::1`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    addr: IpAddr,
    prefix: u8,
}

impl IpBlock {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr =
            addr.parse().map_err(|_| format!("`{text}` is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0..={max}"))?,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpBlock>);

impl TrustedProxies {
    pub fn new(blocks: Vec<IpBlock>) -> Self {
        Self(blocks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|b| b.contains(ip))
    }

    /// The address to attribute a request from `peer` to.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for(headers);
        // Walk from the nearest hop outwards; the first address not of a trusted proxy is the
        // client. An unparseable hop ends the walk at the last address known to be real.
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = hop.as_deref().and_then(parse_node) else { break };
            let ip = canonical(ip);
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// The `for=` hops of `Forwarded` (preferred) or `X-Forwarded-For`, nearest last.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<String>> {
    let forwarded: Vec<Option<String>> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .flat_map(|v| {
            v.to_str().unwrap_or_default().split(',').map(str::to_owned).collect::<Vec<_>>()
        })
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| Some(v.trim().trim_matches('"').to_owned()))
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or_default()
                .split(',')
                .map(|s| Some(s.trim().to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = node.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    node.strip_prefix('[')?.split(']').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn blocks_match_addresses_in_their_prefix() {
        let b = IpBlock::parse("10.0.0.0/8").unwrap();
        assert!(b.contains("10.1.2.3".parse().unwrap()));
        assert!(b.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!b.contains("11.0.0.1".parse().unwrap()));
        let v6 = IpBlock::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(!IpBlock::parse("2001:db8::/32").unwrap().contains("2001:db9::1".parse().unwrap()));
        assert!(IpBlock::parse("::/0").unwrap().contains("2001:db9::1".parse().unwrap()));
        assert!(IpBlock::parse("10.0.0.0/33").is_err());
        assert!(IpBlock::parse("proxy.local").is_err());
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted = TrustedProxies::new(vec![IpBlock::parse("10.0.0.0/8").unwrap()]);
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(trusted.client_address(stranger, &spoofed), stranger);
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        // The client may prepend anything; the nearest untrusted hop is the one the proxy saw.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.3")]);
        assert_eq!(trusted.client_address(proxy, &chain), "203.0.113.9".parse::<IpAddr>().unwrap());
        let rfc =
            headers(&[("forwarded", "for=\"[2001:db8::17]:4711\";proto=https, for=10.0.0.3")]);
        assert_eq!(trusted.client_address(proxy, &rfc), "2001:db8::17".parse::<IpAddr>().unwrap());
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(trusted.client_address(proxy, &unknown), proxy);
    }
}
