//! corestream
