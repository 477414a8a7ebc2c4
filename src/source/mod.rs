//! Sources of members from a live opsi server: directory trees (configuration, file backend,
//! dhcpd.conf) and the create plan that orders them like the original.

pub(crate) mod exclude;
pub(crate) mod plan;
pub(crate) mod tree;
pub(crate) mod xattrs;
