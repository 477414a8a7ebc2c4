//! User and group names by id (for the members `source` reads) and ids by name (for the files
//! `restore` writes), cached: a tree of thousands of files would otherwise ask NSS thousands
//! of times. Imports nothing of the crate.

use std::collections::HashMap;

use nix::unistd::{Gid, Group, Uid, User};

#[derive(Default)]
pub(crate) struct Owners {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
    uids: HashMap<String, Option<u32>>,
    gids: HashMap<String, Option<u32>>,
}

impl Owners {
    /// The user name, or "" when the id has none (as Python's tarfile writes).
    pub(crate) fn user(&mut self, uid: u32) -> String {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    pub(crate) fn group(&mut self, gid: u32) -> String {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                Group::from_gid(Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    pub(crate) fn uid_of(&mut self, name: &str) -> Option<u32> {
        *self
            .uids
            .entry(name.to_string())
            .or_insert_with(|| User::from_name(name).ok().flatten().map(|u| u.uid.as_raw()))
    }

    pub(crate) fn gid_of(&mut self, name: &str) -> Option<u32> {
        *self.gids.entry(name.to_string()).or_insert_with(|| {
            Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
        })
    }
}
