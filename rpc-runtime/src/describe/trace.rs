//! Learns the shape of a type by running its `Deserialize` impl against a probing deserializer.
//!
//! The probe answers every request with a synthetic value (`1` for integers, `""` for strings,
//! one element for a sequence, `Some` for an option) and records what was asked for. One run
//! sees one variant of each enum it meets, so the type is run again, each time steering every
//! enum towards a variant not yet seen, or towards one whose content still has unseen variants,
//! until every container reachable from the root is fully known.
//!
//! Containers (structs, enums, tuple and newtype structs) are keyed by the Rust type the
//! visitor produces (`std::any::type_name`), not by serde's unqualified name: two types called
//! `Error` in different modules, or `Page<u32>` and `Page<String>`, stay apart. A container met
//! again while it is being described (a recursive type) is not descended into: the probe takes
//! the cheapest way out (`None`, an empty sequence, a unit variant) and the shape records a
//! reference back to it.
//!
//! This replaces the serde-reflection crate the design first named: its tracer leaves an enum
//! reached only through a later variant of another enum (the `E` of `Result<T, E>`) incomplete
//! unless each such enum is traced on its own by name, which generated code cannot do, and its
//! registry keys containers by unqualified name, so `Page<u32>` and `Page<String>` in one
//! signature were merged into one wrong description without an error.

use std::collections::HashMap;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// The shape of a value, as far as the probe saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Not seen: a position the probe cut short (inside a recursive reference).
    Unknown,
    /// A primitive, by its canonical name (`i32`, `str`, `unit`, ...).
    Primitive(&'static str),
    Option(Box<Shape>),
    Seq(Box<Shape>),
    Map(Box<Shape>, Box<Shape>),
    Tuple(Vec<Shape>),
    /// A container, by its index in [`Trace::containers`].
    Named(usize),
}

/// What a container holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    Unit,
    Newtype(Shape),
    Tuple(Vec<Shape>),
    Struct(Vec<(&'static str, Shape)>),
    /// Every variant's name (serde gives them all up front), and its content once seen.
    Enum(Vec<(&'static str, Option<Body>)>),
}

/// A struct, enum, tuple struct or newtype struct met while tracing.
#[derive(Debug)]
pub(crate) struct Container {
    /// Known once the container has been described in full at least once.
    pub(crate) body: Option<Body>,
}

/// Why a type could not be traced.
#[derive(Debug)]
pub(crate) struct TraceError(pub(crate) String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TraceError(msg.to_string())
    }
}

/// The most runs one type may take: about one per enum variant reachable from it.
const MAX_RUNS: usize = 4096;
/// The deepest the probe goes, so that a type with no finite value (`enum X { A(Box<X>) }`)
/// is an error, not a stack overflow.
const MAX_DEPTH: usize = 256;

/// The containers seen so far.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    pub(crate) containers: Vec<Container>,
    by_rust: HashMap<&'static str, usize>,
    /// Containers being described, innermost last.
    stack: Vec<usize>,
    /// The enum variants being described (enum, variant), innermost last.
    visiting: Vec<(usize, usize)>,
}

/// Traces `T` until every container reachable from it is known; returns its shape and the
/// containers it refers to.
pub(crate) fn trace<T: de::DeserializeOwned>() -> Result<(Shape, Trace), TraceError> {
    let mut trace = Trace::default();
    for _ in 0..MAX_RUNS {
        let mut root = Shape::Unknown;
        T::deserialize(Probe { trace: &mut trace, out: &mut root, cheap: false, depth: MAX_DEPTH })?;
        if !trace.needs_work(&root, &mut Vec::new()) {
            return Ok((root, trace));
        }
    }
    Err(TraceError(format!("not fully traced after {MAX_RUNS} runs")))
}

impl Trace {
    fn container(&mut self, rust: &'static str) -> usize {
        if let Some(&id) = self.by_rust.get(rust) {
            return id;
        }
        let id = self.containers.len();
        self.containers.push(Container { body: None });
        self.by_rust.insert(rust, id);
        id
    }

    /// Whether `shape` reaches a container not yet fully known. `seen` stops at recursion.
    fn needs_work(&self, shape: &Shape, seen: &mut Vec<usize>) -> bool {
        match shape {
            Shape::Unknown | Shape::Primitive(_) => false,
            Shape::Option(s) | Shape::Seq(s) => self.needs_work(s, seen),
            Shape::Map(k, v) => self.needs_work(k, seen) || self.needs_work(v, seen),
            Shape::Tuple(items) => items.iter().any(|s| self.needs_work(s, seen)),
            Shape::Named(id) => {
                if seen.contains(id) {
                    return false;
                }
                seen.push(*id);
                match &self.containers[*id].body {
                    None => true,
                    Some(body) => self.body_needs_work(body, seen),
                }
            }
        }
    }

    fn body_needs_work(&self, body: &Body, seen: &mut Vec<usize>) -> bool {
        match body {
            Body::Unit => false,
            Body::Newtype(s) => self.needs_work(s, seen),
            Body::Tuple(items) => items.iter().any(|s| self.needs_work(s, seen)),
            Body::Struct(fields) => fields.iter().any(|(_, s)| self.needs_work(s, seen)),
            Body::Enum(variants) => variants.iter().any(|(_, content)| match content {
                None => true,
                Some(body) => self.body_needs_work(body, seen),
            }),
        }
    }

    /// The variant of enum `id` to visit: one not seen yet, else one whose content still needs
    /// work, else the first.
    fn steer(&self, id: usize) -> usize {
        let Some(Body::Enum(variants)) = &self.containers[id].body else { return 0 };
        if let Some(i) = variants.iter().position(|(_, content)| content.is_none()) {
            return i;
        }
        variants
            .iter()
            .position(|(_, content)| content.as_ref().is_some_and(|b| self.body_needs_work(b, &mut vec![id])))
            .unwrap_or(0)
    }

    /// The variant of enum `id` to visit when cutting short: a unit variant if one is known,
    /// else one that is not being described further up (which would recurse for ever).
    fn cheapest(&self, id: usize) -> usize {
        let Some(Body::Enum(variants)) = &self.containers[id].body else { return 0 };
        if let Some(i) = variants.iter().position(|(_, content)| matches!(content, Some(Body::Unit))) {
            return i;
        }
        (0..variants.len()).find(|i| !self.visiting.contains(&(id, *i))).unwrap_or(0)
    }
}

/// The probing deserializer: writes what it is asked for into `out`.
struct Probe<'t> {
    trace: &'t mut Trace,
    out: &'t mut Shape,
    /// Inside a container met again (a recursive type): take the cheapest way out.
    cheap: bool,
    depth: usize,
}

impl<'t> Probe<'t> {
    fn primitive(self, name: &'static str) -> Result<(), TraceError> {
        *self.out = Shape::Primitive(name);
        if self.depth == 0 {
            return Err(TraceError(format!("deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn below(&mut self) -> Result<usize, TraceError> {
        self.depth.checked_sub(1).ok_or_else(|| TraceError(format!("deeper than {MAX_DEPTH} levels")))
    }

    /// Enters container `rust`; returns its id and whether to describe it (false: cut short).
    fn enter(&mut self, rust: &'static str) -> (usize, bool) {
        let id = self.trace.container(rust);
        *self.out = Shape::Named(id);
        let describe = !self.cheap && !self.trace.stack.contains(&id);
        if describe {
            self.trace.stack.push(id);
        }
        (id, describe)
    }

    /// Leaves container `id`, recording its body if it was described.
    fn leave(&mut self, id: usize, describe: bool, body: Option<Body>) {
        if describe {
            self.trace.stack.pop();
            if let Some(body) = body {
                self.trace.containers[id].body = Some(body);
            }
        }
    }

    /// Visits a sequence of `n` fresh slots, described unless cutting short.
    fn slots<'de, V: Visitor<'de>>(
        &mut self,
        n: usize,
        cheap: bool,
        visitor: V,
    ) -> Result<(V::Value, Vec<Shape>), TraceError> {
        let depth = self.below()?;
        let mut shapes = vec![Shape::Unknown; n];
        let value = visitor.visit_seq(Slots { trace: self.trace, slots: shapes.iter_mut(), cheap, depth })?;
        Ok((value, shapes))
    }
}

macro_rules! primitives {
    ($($method:ident => $name:literal, $visit:ident($($value:expr)?);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
            self.primitive($name)?;
            visitor.$visit($($value)?)
        }
    )*};
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = TraceError;

    primitives! {
        deserialize_bool => "bool", visit_bool(false);
        deserialize_i8 => "i8", visit_i8(1);
        deserialize_i16 => "i16", visit_i16(1);
        deserialize_i32 => "i32", visit_i32(1);
        deserialize_i64 => "i64", visit_i64(1);
        deserialize_i128 => "i128", visit_i128(1);
        deserialize_u8 => "u8", visit_u8(1);
        deserialize_u16 => "u16", visit_u16(1);
        deserialize_u32 => "u32", visit_u32(1);
        deserialize_u64 => "u64", visit_u64(1);
        deserialize_u128 => "u128", visit_u128(1);
        deserialize_f32 => "f32", visit_f32(0.0);
        deserialize_f64 => "f64", visit_f64(0.0);
        deserialize_char => "char", visit_char('a');
        deserialize_str => "str", visit_str("");
        deserialize_string => "str", visit_string(String::new());
        deserialize_bytes => "bytes", visit_bytes(&[]);
        deserialize_byte_buf => "bytes", visit_byte_buf(Vec::new());
        deserialize_unit => "unit", visit_unit();
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, TraceError> {
        Err(TraceError("the type asks the format what comes next (`deserialize_any`)".into()))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, TraceError> {
        Err(TraceError("the type skips a value (`deserialize_ignored_any`)".into()))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, TraceError> {
        Err(TraceError("the type reads an identifier outside an enum".into()))
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        let depth = self.below()?;
        let mut inner = Shape::Unknown;
        let value = if self.cheap {
            visitor.visit_none()?
        } else {
            visitor.visit_some(Probe { trace: &mut *self.trace, out: &mut inner, cheap: false, depth })?
        };
        *self.out = Shape::Option(Box::new(inner));
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        let n = usize::from(!self.cheap);
        let (value, mut shapes) = self.slots(n, self.cheap, visitor)?;
        *self.out = Shape::Seq(Box::new(shapes.pop().unwrap_or(Shape::Unknown)));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(mut self, len: usize, visitor: V) -> Result<V::Value, TraceError> {
        let (value, shapes) = self.slots(len, self.cheap, visitor)?;
        *self.out = Shape::Tuple(shapes);
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        let depth = self.below()?;
        let (mut key, mut val) = (Shape::Unknown, Shape::Unknown);
        let entries = usize::from(!self.cheap);
        let value = visitor.visit_map(Entries {
            trace: self.trace,
            key: &mut key,
            value: &mut val,
            left: entries,
            depth,
        })?;
        *self.out = Shape::Map(Box::new(key), Box::new(val));
        Ok(value)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (id, describe) = self.enter(std::any::type_name::<V::Value>());
        let value = visitor.visit_unit()?;
        self.leave(id, describe, Some(Body::Unit));
        Ok(value)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (id, describe) = self.enter(std::any::type_name::<V::Value>());
        let depth = self.below()?;
        let mut inner = Shape::Unknown;
        let value = visitor.visit_newtype_struct(Probe {
            trace: &mut *self.trace,
            out: &mut inner,
            cheap: !describe,
            depth,
        })?;
        self.leave(id, describe, Some(Body::Newtype(inner)));
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (id, describe) = self.enter(std::any::type_name::<V::Value>());
        let (value, shapes) = self.slots(len, !describe, visitor)?;
        self.leave(id, describe, Some(Body::Tuple(shapes)));
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (id, describe) = self.enter(std::any::type_name::<V::Value>());
        let (value, shapes) = self.slots(fields.len(), !describe, visitor)?;
        self.leave(id, describe, Some(Body::Struct(fields.iter().copied().zip(shapes).collect())));
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        if variants.is_empty() {
            return Err(TraceError("an enum with no variants has no value".into()));
        }
        let (id, describe) = self.enter(std::any::type_name::<V::Value>());
        let depth = self.below()?;
        let container = &mut self.trace.containers[id];
        if container.body.is_none() {
            container.body = Some(Body::Enum(variants.iter().map(|v| (*v, None)).collect()));
        }
        let index = if describe { self.trace.steer(id) } else { self.trace.cheapest(id) };
        if describe {
            self.trace.visiting.push((id, index));
        }
        let mut content = None;
        let value = visitor.visit_enum(Variant {
            trace: &mut *self.trace,
            index,
            content: &mut content,
            cheap: !describe,
            depth,
        })?;
        if describe {
            self.trace.stack.pop();
            self.trace.visiting.pop();
        }
        // A unit variant is fully known even when met while cutting short.
        if describe || content == Some(Body::Unit) {
            if let (Some(Body::Enum(vs)), Some(body)) = (&mut self.trace.containers[id].body, content) {
                if let Some(slot) = vs.get_mut(index) {
                    slot.1 = Some(body);
                }
            }
        }
        Ok(value)
    }

    fn is_human_readable(&self) -> bool {
        // Describes the compact form, the one postcard (the default format) carries.
        false
    }
}

/// The elements of a sequence, tuple or struct, one slot each.
struct Slots<'t, I> {
    trace: &'t mut Trace,
    slots: I,
    cheap: bool,
    depth: usize,
}

impl<'de, 't, I: Iterator<Item = &'t mut Shape>> SeqAccess<'de> for Slots<'_, I> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TraceError> {
        let Some(out) = self.slots.next() else { return Ok(None) };
        let probe = Probe { trace: &mut *self.trace, out, cheap: self.cheap, depth: self.depth };
        seed.deserialize(probe).map(Some)
    }
}

/// A map of at most one entry.
struct Entries<'t> {
    trace: &'t mut Trace,
    key: &'t mut Shape,
    value: &'t mut Shape,
    left: usize,
    depth: usize,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, TraceError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let probe = Probe { trace: &mut *self.trace, out: &mut *self.key, cheap: false, depth: self.depth };
        seed.deserialize(probe).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, TraceError> {
        let probe = Probe { trace: &mut *self.trace, out: &mut *self.value, cheap: false, depth: self.depth };
        seed.deserialize(probe)
    }
}

/// The variant the probe chose, and where its content's shape goes.
struct Variant<'t> {
    trace: &'t mut Trace,
    index: usize,
    content: &'t mut Option<Body>,
    cheap: bool,
    depth: usize,
}

impl<'de, 't> EnumAccess<'de> for Variant<'t> {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), TraceError> {
        let index = u32::try_from(self.index).map_err(|_| TraceError("too many variants".into()))?;
        let tag = seed.deserialize(de::value::U32Deserializer::<TraceError>::new(index))?;
        Ok((tag, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = TraceError;

    fn unit_variant(self) -> Result<(), TraceError> {
        *self.content = Some(Body::Unit);
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, TraceError> {
        let mut inner = Shape::Unknown;
        let value = seed.deserialize(Probe {
            trace: self.trace,
            out: &mut inner,
            cheap: self.cheap,
            depth: self.depth,
        })?;
        *self.content = Some(Body::Newtype(inner));
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, TraceError> {
        let mut shapes = vec![Shape::Unknown; len];
        let value = visitor.visit_seq(Slots {
            trace: self.trace,
            slots: shapes.iter_mut(),
            cheap: self.cheap,
            depth: self.depth,
        })?;
        *self.content = Some(Body::Tuple(shapes));
        Ok(value)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let mut shapes = vec![Shape::Unknown; fields.len()];
        let value = visitor.visit_seq(Slots {
            trace: self.trace,
            slots: shapes.iter_mut(),
            cheap: self.cheap,
            depth: self.depth,
        })?;
        *self.content = Some(Body::Struct(fields.iter().copied().zip(shapes).collect()));
        Ok(value)
    }
}
