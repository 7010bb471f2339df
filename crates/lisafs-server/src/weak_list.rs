//! [`WeakList`]: the weak back-references a node keeps to its control FDs
//! and a control FD to its open FDs.

use std::sync::{Arc, Weak};

/// A list of weak references that needs no allocation for zero or one
/// element, the common case by far (every idle control FD pays for its
/// node's list, so a `Vec`'s 32-byte block per node showed up in the
/// memory per FD).
#[derive(Default)]
pub(crate) enum WeakList<T> {
    #[default]
    Empty,
    One(Weak<T>),
    /// Boxed, so that the list is two words rather than three: the extra
    /// allocation is only made for the rare node with several FDs.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Weak<T>>>),
}

impl<T> WeakList<T> {
    /// Adds `w`, first dropping the entries that `keep` refuses.
    pub(crate) fn push(&mut self, w: Weak<T>, keep: impl FnMut(&Weak<T>) -> bool) {
        self.retain(keep);
        *self = match std::mem::take(self) {
            WeakList::Empty => WeakList::One(w),
            WeakList::One(first) => WeakList::Many(Box::new(vec![first, w])),
            WeakList::Many(mut v) => {
                v.push(w);
                WeakList::Many(v)
            }
        };
    }

    /// Keeps only the entries for which `keep` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Weak<T>) -> bool) {
        match self {
            WeakList::Empty => {}
            WeakList::One(w) => {
                if !keep(w) {
                    *self = WeakList::Empty;
                }
            }
            WeakList::Many(v) => {
                v.retain(|w| keep(w));
                match v.len() {
                    0 => *self = WeakList::Empty,
                    1 => {
                        if let Some(w) = v.pop() {
                            *self = WeakList::One(w);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The live entries, as strong references.
    pub(crate) fn upgrade_all(&self) -> Vec<Arc<T>> {
        match self {
            WeakList::Empty => Vec::new(),
            WeakList::One(w) => w.upgrade().into_iter().collect(),
            WeakList::Many(v) => v.iter().filter_map(Weak::upgrade).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_retain_upgrade() {
        let a = Arc::new(1);
        let b = Arc::new(2);
        let c = Arc::new(3);
        let mut l = WeakList::default();
        assert!(l.upgrade_all().is_empty());
        l.push(Arc::downgrade(&a), |_| true);
        assert!(matches!(l, WeakList::One(_)));
        l.push(Arc::downgrade(&b), |_| true);
        l.push(Arc::downgrade(&c), |_| true);
        let got: Vec<i32> = l.upgrade_all().iter().map(|x| **x).collect();
        assert_eq!(got, [1, 2, 3]);
        drop(b);
        l.retain(|w| w.strong_count() > 0);
        let got: Vec<i32> = l.upgrade_all().iter().map(|x| **x).collect();
        assert_eq!(got, [1, 3]);
        let pa = Arc::as_ptr(&a);
        l.retain(|w| Weak::as_ptr(w) != pa);
        assert!(matches!(l, WeakList::One(_)));
        drop(c);
        l.retain(|w| w.strong_count() > 0);
        assert!(matches!(l, WeakList::Empty));
    }
}
