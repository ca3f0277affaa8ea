//! What can go wrong in the application core, in words a caller can act on; the
//! API renders each in its view's shape, the CLI prints it.

use super::WriteError;
use crate::store;

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What was asked is malformed: the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// It cannot be done in the thing's current state.
    #[error("{0}")]
    Conflict(String),
    /// It cannot be done now for a reason on the server's side (a file it cannot read).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed.
    #[error("the store failed")]
    Store(#[source] store::Error),
    /// A write someone waited for was not made.
    #[error("a write to the store failed")]
    Write(#[from] WriteError),
    /// A task on the blocking pool panicked or was cancelled.
    #[error("a background task failed")]
    Task(#[from] tokio::task::JoinError),
}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Self {
        match error {
            // Not a failure: what was asked conflicts with another tenant's record.
            taken @ store::Error::Taken(_) => Self::Conflict(taken.to_string()),
            other => Self::Store(other),
        }
    }
}

impl Error {
    /// Whether it is the server's fault (a 5xx), not the caller's.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Write(_) | Self::Task(_))
    }
}
