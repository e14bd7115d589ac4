//! What the writer is handed: a request's events (with where to answer),
//! a wake-up for waiting phase starts, or looks to fold in.
//!
//! Not here: what the writer does with them (`writer`, `group`).

use tokio::sync::oneshot;

use crate::store::{Event, Look, Stored};

/// What storing one request's events did, or why they were not stored.
pub type Outcome = Result<Vec<Stored>, String>;

/// Something for the writer to do.
pub enum Job {
    /// Events to store.
    Events {
        /// The events, in order.
        events: Vec<Event>,
        /// Where to send the outcome; `None` when nobody waits (exposures).
        reply: Option<oneshot::Sender<Outcome>>,
    },
    /// Phases wait in their own channel: write them even if nothing else comes.
    PhasesWaiting,
    /// Looks to fold into each arm's running minimum.
    Looks(Vec<Look>),
}

impl Job {
    /// Its events (none for other jobs).
    pub fn events(&self) -> std::slice::Iter<'_, Event> {
        match self {
            Self::Events { events, .. } => events.as_slice(),
            Self::PhasesWaiting | Self::Looks(_) => &[],
        }
        .iter()
    }

    /// Its looks (none for other jobs).
    pub fn looks(&self) -> std::slice::Iter<'_, Look> {
        match self {
            Self::Looks(looks) => looks.as_slice(),
            Self::PhasesWaiting | Self::Events { .. } => &[],
        }
        .iter()
    }

    /// How many events it holds.
    pub fn event_count(&self) -> usize {
        self.events().len()
    }

    /// Answers the request, if one waits.
    pub fn answer(self, outcome: Outcome) {
        if let Self::Events {
            reply: Some(reply), ..
        } = self
        {
            let _ = reply.send(outcome);
        }
    }
}
