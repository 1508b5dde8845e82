//! Hints: what the user can do about an error, rendered once at the top as `hint:` lines.

/// An error that can suggest what to do about it. Each stage's error implements it; errors
/// that wrap others delegate to the wrapped one.
pub trait Hint {
    /// What to do, if there is something to say beyond the error itself.
    fn hint(&self) -> Option<String>;
}

/// Hints of an error whose variants carry no advice of their own.
#[macro_export]
#[doc(hidden)]
macro_rules! no_hint {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::hint::Hint for $t {
            fn hint(&self) -> Option<String> {
                None
            }
        })*
    };
}
