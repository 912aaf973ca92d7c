//! Built-in live demo publisher (issue 5).
