//! A serde `Deserializer` wrapper that bounds nesting depth and element counts, around any
//! format's deserializer (postcard's and serde_json's alike).
//!
//! postcard has no nesting limit: a peer that sends 100,000 nested `Some`s to a recursive type
//! overflows the decoding thread's stack and aborts the process. It also trusts declared lengths
//! as size hints, so a map claiming `u64::MAX` entries makes serde reserve megabytes before the
//! first entry is read, and a `Vec<()>` claiming `u64::MAX` zero-sized elements loops for as long
//! as the CPU lets it.
//!
//! [`Limited`] wraps the format's deserializer and every visitor, access and seed that serde
//! passes through it, so that:
//! - every step into a nested value (`Some`, a newtype, a sequence or map element, an enum
//!   variant's content) spends one level of a depth budget, and running out is an error, not a
//!   stack overflow;
//! - every sequence, tuple or map element whose type reads nothing from the input (a zero-sized
//!   value, such as `()` or a unit struct) spends one unit of a budget: other elements are
//!   bounded by the input's length anyway, and zero-sized ones would otherwise let a declared
//!   `u64::MAX` run for ever. "Reads nothing" is judged by the requests the type makes, not by
//!   the bytes a format happened to consume: a request for a primitive, a string, an option, a
//!   sequence, a map, an enum or an identifier reads (in postcard each takes at least one
//!   byte); a unit, unit struct, newtype, tuple or struct of such things does not (in postcard
//!   they take no bytes). So the rule depends only on the type, and a message within the limits
//!   stays within them in every format and when re-encoded (JSON's `null` for `()` counts as
//!   zero-sized too);
//! - size hints are hidden (`None`), so collections grow as elements actually arrive instead of
//!   reserving what the peer declared: memory follows the bytes received, not the bytes claimed.
//!
//! Every recursive type recurses through one of those steps (a type that contained itself
//! directly would have infinite size), so the depth budget covers them all.

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// Which limit a decode broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broken {
    /// Nesting went deeper than the depth limit.
    Depth(usize),
    /// The message holds more zero-sized elements than the budget.
    ZeroSized(usize),
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::Depth(max) => write!(f, "message nesting exceeds the depth limit of {max} levels"),
            Broken::ZeroSized(max) => {
                write!(f, "message holds more zero-sized elements than the limit of {max}")
            }
        }
    }
}

/// The budgets shared by every wrapper of one decode, and the input position.
#[derive(Debug)]
pub(crate) struct Budget {
    max_depth: usize,
    max_zero_sized: usize,
    zero_sized_left: Cell<usize>,
    broken: Cell<Option<Broken>>,
    /// Reading requests made so far (see the module's doc).
    reads: Cell<usize>,
}

impl Budget {
    pub(crate) fn new(max_depth: usize, max_zero_sized: usize) -> Self {
        Budget {
            max_depth,
            max_zero_sized,
            zero_sized_left: Cell::new(max_zero_sized),
            broken: Cell::new(None),
            reads: Cell::new(0),
        }
    }

    /// The limit that was broken, if the decode failed because of one.
    pub(crate) fn broken(&self) -> Option<Broken> {
        self.broken.get()
    }

    fn fail<E: de::Error>(&self, broken: Broken) -> E {
        self.broken.set(Some(broken));
        E::custom(broken)
    }

    /// The depth one level below `depth` (levels left), or an error if there is none.
    fn descend<E: de::Error>(&self, depth: usize) -> Result<usize, E> {
        depth.checked_sub(1).ok_or_else(|| self.fail(Broken::Depth(self.max_depth)))
    }

    /// Counts one request that reads input.
    #[inline]
    fn read(&self) {
        self.reads.set(self.reads.get().wrapping_add(1));
    }

    /// Runs `read` (one element) and charges it to the budget if it made no reading request.
    fn element<T, E: de::Error>(&self, read: impl FnOnce() -> Result<Option<T>, E>) -> Result<Option<T>, E> {
        let before = self.reads.get();
        let element = read()?;
        if element.is_some() && self.reads.get() == before {
            let left = self.zero_sized_left.get();
            if left == 0 {
                return Err(self.fail(Broken::ZeroSized(self.max_zero_sized)));
            }
            self.zero_sized_left.set(left - 1);
        }
        Ok(element)
    }
}

/// A deserializer with `depth` levels of nesting left.
pub(crate) struct Limited<'b, D> {
    inner: D,
    depth: usize,
    budget: &'b Budget,
}

impl<'b, D> Limited<'b, D> {
    pub(crate) fn new(inner: D, budget: &'b Budget) -> Self {
        Limited { inner, depth: budget.max_depth, budget }
    }
}

/// Wraps a visitor, access or seed with the same depth and budget.
struct Wrap<'b, T> {
    inner: T,
    depth: usize,
    budget: &'b Budget,
}

impl<'b, T> Wrap<'b, T> {
    fn new(inner: T, depth: usize, budget: &'b Budget) -> Self {
        Wrap { inner, depth, budget }
    }
}

/// Forwards requests that read input, counting each.
macro_rules! forward_deserialize {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.budget.read();
            self.inner.$method(Wrap::new(visitor, self.depth, self.budget))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Limited<'_, D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    // The requests below read nothing by themselves (see the module's doc): not counted.

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_unit(Wrap::new(visitor, self.depth, self.budget))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_unit_struct(name, Wrap::new(visitor, self.depth, self.budget))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_newtype_struct(name, Wrap::new(visitor, self.depth, self.budget))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple(len, Wrap::new(visitor, self.depth, self.budget))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple_struct(name, len, Wrap::new(visitor, self.depth, self.budget))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(name, fields, Wrap::new(visitor, self.depth, self.budget))
    }

    /// Reads a variant index or name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.budget.read();
        self.inner.deserialize_enum(name, variants, Wrap::new(visitor, self.depth, self.budget))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let depth = self.budget.descend(self.depth)?;
        self.inner.visit_some(Limited { inner: deserializer, depth, budget: self.budget })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let depth = self.budget.descend(self.depth)?;
        self.inner.visit_newtype_struct(Limited { inner: deserializer, depth, budget: self.budget })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(Wrap::new(seq, self.depth, self.budget))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(Wrap::new(map, self.depth, self.budget))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Wrap::new(data, self.depth, self.budget))
    }
}

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<'_, T> {
    type Value = T::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T::Value, D::Error> {
        self.inner.deserialize(Limited { inner: deserializer, depth: self.depth, budget: self.budget })
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        let depth = self.budget.descend(self.depth)?;
        let (inner, budget) = (&mut self.inner, self.budget);
        budget.element(|| inner.next_element_seed(Wrap::new(seed, depth, budget)))
    }

    /// Hidden, so that collections grow with the elements that really arrive rather than
    /// reserving what the peer declared.
    fn size_hint(&self) -> Option<usize> {
        None
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        // A zero-sized key makes a map of at most one entry, but counts like any element.
        let depth = self.budget.descend(self.depth)?;
        let (inner, budget) = (&mut self.inner, self.budget);
        budget.element(|| inner.next_key_seed(Wrap::new(seed, depth, budget)))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let depth = self.budget.descend(self.depth)?;
        self.inner.next_value_seed(Wrap::new(seed, depth, self.budget))
    }

    fn size_hint(&self) -> Option<usize> {
        None
    }
}

impl<'b, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<'b, A> {
    type Error = A::Error;
    type Variant = Wrap<'b, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant), A::Error> {
        let (depth, budget) = (self.depth, self.budget);
        let (value, variant) = self.inner.variant_seed(Wrap::new(seed, depth, budget))?;
        Ok((value, Wrap::new(variant, depth, budget)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let depth = self.budget.descend(self.depth)?;
        self.inner.newtype_variant_seed(Wrap::new(seed, depth, self.budget))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let depth = self.budget.descend(self.depth)?;
        self.inner.tuple_variant(len, Wrap::new(visitor, depth, self.budget))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let depth = self.budget.descend(self.depth)?;
        self.inner.struct_variant(fields, Wrap::new(visitor, depth, self.budget))
    }
}
