//! An outbound connection to a port associated with reverse shells (4444,
//! Metasploit's default) or crypto-mining pools (3333, 5555, 14444, the
//! usual Stratum ports).
//!
//! Attempts count as well as established connections: a miner that cannot
//! reach its pool is still a miner. Non-blocking connects return
//! EINPROGRESS, so a "successful only" filter would miss most real ones.

use std::collections::BTreeSet;

use vigil_proto::v1::{Event, EventType, Priority};

use super::info;
use crate::{
    engine::{Rule, RuleInfo},
    fields,
    output::TemplateError,
};

pub const NAME: &str = "Outbound connection to suspicious port";

const OUTPUT: &str = "Outbound connection to suspicious port | fd.name=%fd.name fd.rip=%fd.rip \
fd.rport=%fd.rport evt.res=%evt.res evt.type=%evt.type user.uid=%user.uid proc.name=%proc.name \
proc.pid=%proc.pid proc.exepath=%proc.exepath container.id=%container.id";

pub struct SuspiciousPort {
    info: RuleInfo,
    ports: BTreeSet<u32>,
}

impl SuspiciousPort {
    pub fn new(ports: &[u16], priority: Priority) -> Result<Self, TemplateError> {
        let info = info(
            NAME,
            "A process connected to a port used by reverse shells or mining pools.",
            priority,
            &[
                "host",
                "container",
                "network",
                "mitre_command_and_control",
                "T1571",
                "mitre_impact",
                "T1496",
            ],
            &[EventType::Connect],
            OUTPUT,
        )?;
        Ok(Self {
            info,
            ports: ports.iter().map(|p| u32::from(*p)).collect(),
        })
    }
}

impl Rule for SuspiciousPort {
    fn info(&self) -> &RuleInfo {
        &self.info
    }

    fn matches(&self, event: &Event) -> bool {
        fields::inet_address(event).is_some_and(|address| self.ports.contains(&address.port))
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{AddressFamily, Args, SocketAddress};

    use super::*;

    fn connect(family: AddressFamily, port: u32, return_value: i64) -> Event {
        Event {
            r#type: EventType::Connect as i32,
            return_value,
            args: Some(Args {
                address: Some(SocketAddress {
                    family: family as i32,
                    ip: "203.0.113.9".into(),
                    port,
                    unix_path: String::new(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rule() -> SuspiciousPort {
        SuspiciousPort::new(&[4444, 3333], Priority::Critical).unwrap()
    }

    #[test]
    fn connects_to_listed_ports_match_whatever_the_result() {
        for event in [
            connect(AddressFamily::Inet, 4444, 0),
            connect(AddressFamily::Inet, 3333, -115),
            connect(AddressFamily::Inet6, 4444, -111),
        ] {
            assert!(rule().matches(&event), "{event:?}");
        }
        assert_eq!(rule().info().priority, Priority::Critical);
    }

    #[test]
    fn other_ports_unix_sockets_and_other_events_do_not_match() {
        let mut open = connect(AddressFamily::Inet, 4444, 0);
        open.r#type = EventType::Open as i32;
        for event in [
            connect(AddressFamily::Inet, 443, 0),
            connect(AddressFamily::Inet, 44444, 0),
            connect(AddressFamily::Unix, 4444, 0),
            connect(AddressFamily::Unspecified, 4444, 0),
            open,
            Event {
                r#type: EventType::Connect as i32,
                ..Default::default()
            },
        ] {
            assert!(!rule().matches(&event), "{event:?}");
        }
    }
}
