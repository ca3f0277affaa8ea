//! The error an action returns on purpose.

use std::fmt;

use crate::__bindings::wasp::playbook::types as wit;

/// The class of an action's failure, recorded beside its message so that playbook
/// authors can branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The input did not have the shape or values the action needs.
    InvalidInput,
    /// The thing the action looked for does not exist.
    NotFound,
    /// Credentials were missing or refused.
    Unauthorized,
    /// The credentials were valid but lack permission.
    Forbidden,
    /// A remote service asked the app to slow down.
    RateLimited,
    /// A remote service could not be reached or failed.
    Unavailable,
    /// A remote call took too long.
    Timeout,
    /// The asset's settings or secrets are missing or wrong.
    Misconfigured,
    /// Anything else.
    Internal,
}

/// An error an action returns: a code, a message for the playbook author, and whether
/// running the same call again might succeed.
///
/// ```
/// use wasp_sdk::StepError;
/// let e = StepError::unavailable("feed server answered 503").retryable();
/// assert!(e.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    code: ErrorCode,
    message: String,
    retryable: bool,
}

impl StepError {
    /// An error of class `code`. Rate limits, unavailability and timeouts are retryable
    /// unless [`StepError::permanent`] says otherwise; everything else is not.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let retryable = matches!(
            code,
            ErrorCode::RateLimited | ErrorCode::Unavailable | ErrorCode::Timeout
        );
        Self {
            code,
            message: message.into(),
            retryable,
        }
    }

    /// The input did not have the shape or values the action needs.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// The thing the action looked for does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// Credentials were missing or refused.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// A remote service could not be reached or failed (retryable).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// The asset's settings or secrets are missing or wrong.
    pub fn misconfigured(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Misconfigured, message)
    }

    /// Anything else.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// Mark the error as retryable: a `retry` policy may run the step again.
    #[must_use]
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    /// Mark the error as permanent: a `retry` policy will not run the step again.
    #[must_use]
    pub fn permanent(mut self) -> Self {
        self.retryable = false;
        self
    }

    /// The class of failure.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether running the same call again might succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for StepError {}

impl From<StepError> for wit::StepError {
    fn from(error: StepError) -> Self {
        let code = match error.code {
            ErrorCode::InvalidInput => wit::ErrorCode::InvalidInput,
            ErrorCode::NotFound => wit::ErrorCode::NotFound,
            ErrorCode::Unauthorized => wit::ErrorCode::Unauthorized,
            ErrorCode::Forbidden => wit::ErrorCode::Forbidden,
            ErrorCode::RateLimited => wit::ErrorCode::RateLimited,
            ErrorCode::Unavailable => wit::ErrorCode::Unavailable,
            ErrorCode::Timeout => wit::ErrorCode::Timeout,
            ErrorCode::Misconfigured => wit::ErrorCode::Misconfigured,
            ErrorCode::Internal => wit::ErrorCode::Internal,
        };
        wit::StepError {
            code,
            message: error.message,
            retryable: error.retryable,
        }
    }
}
