//! Who a detection or a block is about: an address, a network, an authenticated caller, or a user
//! name someone claimed. One text form for the admin API, the CLI, alerts, Redis and the audit.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

/// The most bytes of a caller or user name kept in a subject (names are client-influenced).
const NAME_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// One client address (canonical: an IPv4-mapped IPv6 address is IPv4).
    Address(IpAddr),
    /// A network of client addresses.
    Network(IpNet),
    /// An authenticated caller: `key:ID` for an API key, `sub:SUBJECT` otherwise.
    Caller(Arc<str>),
    /// A user name claimed in failed credentials (HTTP Basic); never verified, so never blocked.
    User(Arc<str>),
}

impl Subject {
    pub fn address(ip: IpAddr) -> Self {
        Self::Address(ip.to_canonical())
    }

    /// A client as the detectors count it: an IPv4 address, or the /64 of an IPv6 one (a single
    /// IPv6 host usually holds a whole /64 and could rotate through it).
    pub fn source(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::Address(IpAddr::V4(v4)),
            v6 => Self::network_of(v6),
        }
    }

    /// The network an address is counted in: its /24 (IPv4) or /64 (IPv6), where one customer,
    /// one NAT or one hosting tenant usually sits.
    pub fn network_of(ip: IpAddr) -> Self {
        let net = match ip.to_canonical() {
            IpAddr::V4(v4) => IpNet::new_assert(IpAddr::V4(v4), 24),
            IpAddr::V6(v6) => IpNet::new_assert(IpAddr::V6(v6), 64),
        };
        Self::Network(net.trunc())
    }

    /// The caller of an API key by its id, or of any other credential by its subject.
    pub fn caller(key_id: Option<&str>, subject: Option<&str>) -> Option<Self> {
        match (key_id, subject) {
            (Some(id), _) if !id.is_empty() => Some(Self::Caller(bounded("key:", id))),
            (None, Some(sub)) if !sub.is_empty() => Some(Self::Caller(bounded("sub:", sub))),
            _ => None,
        }
    }

    pub fn user(name: &str) -> Self {
        Self::User(bounded("", name))
    }

    /// Whether a block on this subject can be enforced (a claimed user name cannot: anyone can
    /// claim any name, and blocking it would lock its owner out).
    pub fn blockable(&self) -> bool {
        !matches!(self, Self::User(_))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Address(_) => "address",
            Self::Network(_) => "network",
            Self::Caller(_) => "caller",
            Self::User(_) => "user",
        }
    }

    /// Parses the text form of a blockable subject: an address, a network in CIDR form, or
    /// `key:ID` / `sub:SUBJECT`.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Self::address(ip));
        }
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Self::Network(net.trunc()));
        }
        if (text.starts_with("key:") || text.starts_with("sub:"))
            && text.len() > 4
            && text.len() <= NAME_MAX
            && !text.chars().any(char::is_control)
        {
            return Ok(Self::Caller(Arc::from(text)));
        }
        Err("a subject is an IP address, a network (CIDR), key:ID or sub:SUBJECT")
    }

    /// Whether a request from this address is covered by this address or network block.
    pub fn covers(&self, ip: IpAddr) -> bool {
        match self {
            Self::Address(blocked) => *blocked == ip.to_canonical(),
            Self::Network(net) => net.contains(&ip.to_canonical()),
            _ => false,
        }
    }
}

/// `prefix` + `name`, cut to `NAME_MAX` bytes on a character boundary, control characters
/// replaced (the text goes into logs, alerts and Redis members).
fn bounded(prefix: &str, name: &str) -> Arc<str> {
    let mut out = String::with_capacity(prefix.len() + name.len().min(NAME_MAX));
    out.push_str(prefix);
    for c in name.chars() {
        if out.len() + c.len_utf8() > NAME_MAX {
            break;
        }
        out.push(if c.is_control() { '\u{fffd}' } else { c });
    }
    Arc::from(out)
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(ip) => write!(f, "{ip}"),
            Self::Network(net) => write!(f, "{net}"),
            Self::Caller(name) => f.write_str(name),
            Self::User(name) => write!(f, "user:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_for_every_blockable_subject() {
        for text in [
            "192.0.2.7",
            "2001:db8::1",
            "192.0.2.0/24",
            "2001:db8::/64",
            "key:k1",
            "sub:alice",
        ] {
            let subject = Subject::parse(text).expect(text);
            assert_eq!(subject.to_string(), text);
            assert!(subject.blockable());
        }
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(Subject::address(mapped).to_string(), "192.0.2.7");
        assert!(Subject::parse("192.0.2.0/24").unwrap().covers(mapped));
        assert_eq!(Subject::network_of(mapped).to_string(), "192.0.2.0/24");
    }

    #[test]
    fn networks_are_the_24_and_the_64_around_an_address() {
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(Subject::network_of(v6).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn names_with_control_characters_or_unknown_prefixes_are_refused() {
        assert!(Subject::parse("key:a\nb").is_err());
        assert!(Subject::parse("alice").is_err());
        assert!(Subject::parse("key:").is_err());
        assert!(Subject::parse(&format!("sub:{}", "x".repeat(300))).is_err());
    }

    #[test]
    fn client_chosen_names_are_cut_and_cleaned() {
        let long = format!("a\n{}", "é".repeat(400));
        let Subject::User(name) = Subject::user(&long) else {
            panic!()
        };
        assert!(name.len() <= NAME_MAX);
        assert!(!name.chars().any(char::is_control));
    }
}
