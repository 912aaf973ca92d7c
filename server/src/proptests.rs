//! Property tests of the pure request-path pieces (issue 8).
