//! The built-in rules, one module each. They stand in for the Falco rule
//! language until it lands; see [`crate::engine`] for the seam.

mod shadow;
mod shell;
mod suspicious_port;

use vigil_proto::v1::{EventType, Priority};

pub use shadow::ShadowRead;
pub use shell::ShellInContainer;
pub use suspicious_port::SuspiciousPort;

use crate::{
    engine::{Rule, RuleInfo},
    output::{OutputTemplate, TemplateError},
};

/// The configurable parts of the built-in rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSettings {
    pub shell_priority: Priority,
    pub suspicious_ports: Vec<u16>,
    pub suspicious_port_priority: Priority,
}

/// Every built-in rule, in load order. The suspicious-port rule is left out
/// when no port is configured.
pub fn builtin(settings: &RuleSettings) -> Result<Vec<Box<dyn Rule>>, TemplateError> {
    let mut rules: Vec<Box<dyn Rule>> = vec![
        Box::new(ShellInContainer::new(settings.shell_priority)?),
        Box::new(ShadowRead::new()?),
    ];
    if !settings.suspicious_ports.is_empty() {
        rules.push(Box::new(SuspiciousPort::new(
            &settings.suspicious_ports,
            settings.suspicious_port_priority,
        )?));
    }
    Ok(rules)
}

fn info(
    name: &str,
    description: &str,
    priority: Priority,
    tags: &[&str],
    event_types: &[EventType],
    output: &str,
) -> Result<RuleInfo, TemplateError> {
    Ok(RuleInfo {
        name: name.to_owned(),
        description: description.to_owned(),
        priority,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        event_types: event_types.to_vec(),
        output: OutputTemplate::parse(output)?,
    })
}

/// The last component of a path (`/bin/sh` → `sh`).
fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_load_with_unique_names_and_declared_types() {
        let settings = RuleSettings {
            shell_priority: Priority::Notice,
            suspicious_ports: vec![4444],
            suspicious_port_priority: Priority::Critical,
        };
        let rules = builtin(&settings).unwrap();
        let mut names: Vec<_> = rules.iter().map(|r| r.info().name.clone()).collect();
        assert_eq!(names.len(), 3);
        names.dedup();
        assert_eq!(names.len(), 3);
        for rule in &rules {
            assert!(!rule.info().event_types.is_empty());
            assert!(rule.info().tags.iter().any(|t| t.starts_with("mitre_")));
        }
        let no_ports = RuleSettings {
            suspicious_ports: vec![],
            ..settings
        };
        assert_eq!(builtin(&no_ports).unwrap().len(), 2);
    }
}
