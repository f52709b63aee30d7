//! Sanitization of marked fields against an allow-list (HTML, with ammonia).

pub mod field_path;
