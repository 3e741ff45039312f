//! The rule engine seam.
//!
//! A [`Rule`] says which event types it can match, decides on one event, and
//! carries the metadata of the findings it raises. Today the rules are the
//! built-in Rust ones in [`crate::rules`]; the Falco rule language will add
//! rules compiled from YAML behind the same trait, so the engine, finding
//! construction and publishing do not change.
//!
//! Every rule that matches an event fires (Falco's `rule_matching: all`):
//! first-match shadowing is one of Falco's most complained-about behaviours.

use std::collections::HashMap;

use vigil_proto::v1::{Event, EventType, Priority};

use crate::output::OutputTemplate;

/// What every rule declares about itself.
#[derive(Clone, Debug)]
pub struct RuleInfo {
    /// Unique rule name; also the finding name.
    pub name: String,
    pub description: String,
    pub priority: Priority,
    /// Falco-style tags: domain, `mitre_<tactic>`, ATT&CK technique id.
    pub tags: Vec<String>,
    /// The only event types `matches` can return true for.
    pub event_types: Vec<EventType>,
    pub output: OutputTemplate,
}

/// A detection rule.
pub trait Rule: Send + Sync {
    fn info(&self) -> &RuleInfo;

    /// Whether `event` triggers this rule. Must be false for event types not
    /// listed in [`RuleInfo::event_types`].
    fn matches(&self, event: &Event) -> bool;
}

/// Rules bucketed by event type, so an event meets only the rules that can
/// match it.
#[derive(Default)]
pub struct Engine {
    rules: Vec<Box<dyn Rule>>,
    by_type: HashMap<EventType, Vec<usize>>,
}

impl Engine {
    pub fn new(rules: Vec<Box<dyn Rule>>) -> Self {
        let mut by_type: HashMap<EventType, Vec<usize>> = HashMap::new();
        for (index, rule) in rules.iter().enumerate() {
            for event_type in &rule.info().event_types {
                by_type.entry(*event_type).or_default().push(index);
            }
        }
        Self { rules, by_type }
    }

    pub fn rules(&self) -> impl Iterator<Item = &dyn Rule> {
        self.rules.iter().map(|rule| rule.as_ref())
    }

    /// The rules that match `event`, in load order.
    pub fn matching<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a dyn Rule> + 'a {
        self.by_type
            .get(&event.r#type())
            .into_iter()
            .flatten()
            .map(|index| self.rules[*index].as_ref())
            .filter(move |rule| rule.matches(event))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    /// Matches everything it is shown, and counts how often it was asked.
    struct Counting {
        info: RuleInfo,
        asked: Arc<AtomicUsize>,
    }

    impl Rule for Counting {
        fn info(&self) -> &RuleInfo {
            &self.info
        }
        fn matches(&self, _event: &Event) -> bool {
            self.asked.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    fn counting(name: &str, types: &[EventType]) -> (Box<dyn Rule>, Arc<AtomicUsize>) {
        let asked = Arc::new(AtomicUsize::new(0));
        let info = RuleInfo {
            name: name.into(),
            description: String::new(),
            priority: Priority::Notice,
            tags: vec![],
            event_types: types.to_vec(),
            output: OutputTemplate::parse(name).unwrap(),
        };
        let rule = Counting {
            info,
            asked: asked.clone(),
        };
        (Box::new(rule), asked)
    }

    fn event(event_type: EventType) -> Event {
        Event {
            r#type: event_type as i32,
            ..Default::default()
        }
    }

    #[test]
    fn events_meet_only_the_rules_of_their_type_and_all_of_them_fire() {
        let (exec_a, asked_a) = counting("a", &[EventType::Exec]);
        let (exec_b, asked_b) = counting("b", &[EventType::Exec, EventType::Open]);
        let (connect, asked_c) = counting("c", &[EventType::Connect]);
        let engine = Engine::new(vec![exec_a, exec_b, connect]);

        let names: Vec<_> = engine
            .matching(&event(EventType::Exec))
            .map(|r| r.info().name.clone())
            .collect();
        assert_eq!(names, ["a", "b"], "no first-match shadowing");
        assert_eq!(engine.matching(&event(EventType::Open)).count(), 1);
        assert_eq!(engine.matching(&event(EventType::Heartbeat)).count(), 0);
        let unknown = Event {
            r#type: 77,
            ..Default::default()
        };
        assert_eq!(engine.matching(&unknown).count(), 0);
        assert_eq!(asked_a.load(Ordering::Relaxed), 1);
        assert_eq!(asked_b.load(Ordering::Relaxed), 2);
        assert_eq!(
            asked_c.load(Ordering::Relaxed),
            0,
            "connect rule never asked"
        );
    }
}
