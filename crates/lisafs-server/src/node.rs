//! The node tree: one [`Node`] per path position that some control FD
//! refers to, shared by every connection of a server.
//!
//! Reference model: a control FD holds an `Arc` on its node; a node holds an
//! `Arc` on its parent; a parent's child map holds only `Weak`s, so a node
//! leaves its parent's map when its last reference goes (in `Drop`).
//!
//! Locks of a node, in the server-wide order (after the rename lock):
//! `op_mu` → `link` → `lists` (children and control FDs). `op_mu` and
//! `lists` may be held on several nodes only ancestor before descendant,
//! which is stable only under the rename lock. An `Arc<Node>` or
//! `Arc<ControlFd>` is never dropped while a `lists` lock is held, because a
//! drop may take the parent's `lists` lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use crate::fd::ControlFd;
use crate::name::Name;
use crate::stats::Counters;
use crate::weak_list::WeakList;

/// A position in the served tree.
pub struct Node {
    /// Serializes operations on this node: shared for "read", exclusive for
    /// "write" concurrency guarantees.
    pub(crate) op_mu: RwLock<()>,
    deleted: AtomicBool,
    /// Name and parent. Changed only by renames, which hold the server's
    /// rename lock exclusively; readers hold it shared.
    link: Mutex<Link>,
    /// Children by name, allocated with the first one: most nodes are
    /// files, and an empty map inline would cost every idle FD 48 bytes.
    /// Children and control FDs, under one lock (one lock word per node
    /// rather than two; they are never needed together).
    lists: Mutex<Lists>,
    pub(crate) counters: Arc<Counters>,
}

#[derive(Default)]
struct Lists {
    children: Option<Box<ChildMap>>,
    control_fds: WeakList<ControlFd>,
}

/// A directory's children. Short names are inline in the key; a long one
/// shares its block with the child's own copy ([`Link::name`]).
type ChildMap = HashMap<Name, Weak<Node>>;

struct Link {
    name: Name,
    parent: Option<Arc<Node>>,
}

impl Node {
    /// The root of a server's tree.
    /// The root lives as long as the server and is not counted in
    /// [`crate::Stats::nodes`].
    pub(crate) fn new_root(counters: Arc<Counters>) -> Arc<Node> {
        Self::new(Name::new(b""), None, counters)
    }

    fn new(name: Name, parent: Option<Arc<Node>>, counters: Arc<Counters>) -> Arc<Node> {
        if parent.is_some() {
            counters.nodes_inc();
        }
        Arc::new(Node {
            op_mu: RwLock::new(()),
            deleted: AtomicBool::new(false),
            link: Mutex::new(Link { name, parent }),
            lists: Mutex::new(Lists::default()),
            counters,
        })
    }

    /// Whether the node was unlinked or replaced by a rename.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// The child named `name`, created if absent.
    ///
    /// Precondition: the rename lock is held (shared is enough) and `name`
    /// passed the name check.
    pub(crate) fn lookup_or_insert_child_locked(self: &Arc<Node>, name: &[u8]) -> Arc<Node> {
        let mut lists = self.lists.lock();
        let children = lists.children.get_or_insert_with(Box::default);
        if let Some(child) = children.get(name).and_then(Weak::upgrade) {
            return child;
        }
        let name = Name::new(name);
        let child = Node::new(
            name.clone(),
            Some(Arc::clone(self)),
            Arc::clone(&self.counters),
        );
        // Replacing a dead entry only drops a Weak, which never runs Node::drop.
        children.insert(name, Arc::downgrade(&child));
        child
    }

    /// The live child named `name`, if the tree has one.
    pub(crate) fn lookup_child(&self, name: &[u8]) -> Option<Arc<Node>> {
        self.lists
            .lock()
            .children
            .as_ref()
            .and_then(|c| c.get(name))
            .and_then(Weak::upgrade)
    }

    fn children_snapshot(&self) -> Vec<Arc<Node>> {
        match self.lists.lock().children.as_ref() {
            Some(c) => c.values().filter_map(Weak::upgrade).collect(),
            None => Vec::new(),
        }
    }

    /// Marks this node and its whole subtree deleted.
    pub(crate) fn mark_deleted_recursive(&self) {
        self.deleted.store(true, Ordering::Release);
        // The snapshot's Arcs are dropped after the lists lock is released.
        for child in self.children_snapshot() {
            child.mark_deleted_recursive();
        }
    }

    /// Removes the child entry `name` if it refers to `child`.
    ///
    /// Precondition: the rename lock is held exclusively.
    pub(crate) fn remove_child_global(&self, name: &[u8], child: &Arc<Node>) {
        self.remove_child_entry(name, Arc::as_ptr(child));
    }

    /// Removes the child entry `name` if it refers to the node at `child`;
    /// frees the map once empty.
    fn remove_child_entry(&self, name: &[u8], child: *const Node) {
        let mut lists = self.lists.lock();
        if let Some(children) = lists.children.as_mut() {
            if children.get(name).is_some_and(|w| Weak::as_ptr(w) == child) {
                children.remove(name);
            }
            if children.is_empty() {
                // Dropping the map drops only Weaks (none, it is empty).
                lists.children = None;
            }
        }
    }

    /// Moves `self` to `new_parent` under `new_name`, taking over the slot
    /// (the caller removed or deleted any previous occupant).
    ///
    /// Precondition: the rename lock is held exclusively.
    pub(crate) fn move_global(self: &Arc<Node>, new_parent: &Arc<Node>, new_name: &[u8]) {
        let new_name = Name::new(new_name);
        let old_parent = {
            let mut link = self.link.lock();
            let old_name = core::mem::replace(&mut link.name, new_name.clone());
            let old_parent = link.parent.replace(Arc::clone(new_parent));
            if let Some(p) = &old_parent {
                p.remove_child_global(old_name.as_bytes(), self);
            }
            old_parent
        };
        new_parent
            .lists
            .lock()
            .children
            .get_or_insert_with(Box::default)
            .insert(new_name, Arc::downgrade(self));
        drop(old_parent);
    }

    /// Registers a control FD on this node.
    pub(crate) fn insert_fd(&self, fd: &Arc<ControlFd>) {
        self.lists
            .lock()
            .control_fds
            .push(Arc::downgrade(fd), |w| w.strong_count() > 0);
    }

    /// Forgets the control FD at `ptr` (called from its `Drop`).
    pub(crate) fn remove_fd(&self, ptr: *const ControlFd) {
        self.lists
            .lock()
            .control_fds
            .retain(|w| Weak::as_ptr(w) != ptr && w.strong_count() > 0);
    }

    /// Calls `f` on every live control FD of this node and of every node
    /// below it.
    ///
    /// Precondition: the rename lock is held exclusively.
    pub(crate) fn for_each_fd_recursive_global(&self, f: &mut dyn FnMut(&ControlFd)) {
        let fds: Vec<Arc<ControlFd>> = self.lists.lock().control_fds.upgrade_all();
        for fd in &fds {
            f(fd);
        }
        drop(fds);
        for child in self.children_snapshot() {
            child.for_each_fd_recursive_global(f);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let me: *const Node = self;
        let link = self.link.get_mut();
        if let Some(parent) = link.parent.take() {
            self.counters.nodes_dec();
            parent.remove_child_entry(link.name.as_bytes(), me);
            // `parent` is dropped here, after its lists lock is released.
        }
    }
}
