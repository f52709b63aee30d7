//! Sanitization of marked body fields against an HTML allow-list (ammonia).
//!
//! Threat: stored cross-site scripting. A JSON field that the upstream stores and later renders
//! as HTML (a comment, a bio, a product description) carries markup that runs in other users'
//! browsers: `<script>`, event handlers (`onerror`, `onload`), `javascript:` and `data:` URLs,
//! `<iframe>`, `<svg>`, `<style>`, or tricks that parse differently than they look (mixed case,
//! unclosed tags, comments, namespace confusion).
//!
//! Invariants: only fields named by a [`FieldPath`](field_path::FieldPath) are touched, and only
//! when they hold strings. The allow-list is built once per config (never per request) and can
//! only name what ammonia allows by default, so no setting can allow script, style, event
//! handlers, the `style` attribute or a `javascript:`/`data:` URL; every link gets
//! `rel="noopener noreferrer"`; `script` and `style` are removed with their content. A field is
//! either left byte for byte (when it is already what the sanitizer would write) or replaced by
//! ammonia's output: raw input with markup in it is never passed on. With `on_unsafe = "reject"`
//! a field from which markup would be removed refuses the request at its pointer, with our
//! words, never its content. The audit gets a count of such fields, never their content.

pub mod apply;
pub mod config;
pub mod field_path;
pub mod html;
pub mod policy;
