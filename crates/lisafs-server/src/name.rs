//! [`Name`]: a node's name, stored inline when short.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Bytes a name may have to be stored inline.
const INLINE: usize = 14;

/// A path component. Names of up to 14 bytes (most file names) live inside
/// the value, so neither the node nor its parent's map key allocates; a
/// longer name is one shared heap block. Two words either way: an idle
/// control FD pays for its name twice (node and map key).
#[derive(Clone)]
pub(crate) enum Name {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Arc<Vec<u8>>),
}

impl Name {
    pub(crate) fn new(name: &[u8]) -> Name {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..name.len()].copy_from_slice(name);
                Name::Inline { len, bytes }
            }
            _ => Name::Heap(Arc::new(name.to_vec())),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Name::Heap(v) => v,
        }
    }
}

impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

// Hash and Eq must agree with `[u8]`'s for lookups by `&[u8]` (Borrow).
impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn inline_and_heap_names_look_up_by_bytes() {
        assert_eq!(std::mem::size_of::<Name>(), 16);
        let short = b"f-00001".as_slice();
        let edge = [b'x'; INLINE];
        let long = [b'y'; INLINE + 1];
        let mut m = HashMap::new();
        for (i, n) in [short, &edge, &long, b""].iter().enumerate() {
            let name = Name::new(n);
            assert_eq!(name.as_bytes(), *n);
            m.insert(name, i);
        }
        assert!(matches!(Name::new(&edge), Name::Inline { .. }));
        assert!(matches!(Name::new(&long), Name::Heap(_)));
        assert_eq!(m.get(short), Some(&0));
        assert_eq!(m.get(&edge[..]), Some(&1));
        assert_eq!(m.get(&long[..]), Some(&2));
        assert_eq!(m.get(&b""[..]), Some(&3));
        assert_eq!(m.get(&long[..INLINE]), None);
    }
}
