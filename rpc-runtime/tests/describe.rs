//! Type descriptions and signature hashes: what changes them and what does not.

use std::collections::{BTreeMap, HashMap};

use rpc_runtime::describe::{describe, signature_hash, MethodDescriptor, MethodKind};
use serde::{Deserialize, Serialize};

fn text<T: serde::de::DeserializeOwned>() -> String {
    let d = describe::<T>();
    assert!(!d.is_opaque(), "{} fell back to opaque: {}", d.rust_name(), d.canonical());
    d.canonical().to_owned()
}

mod v1 {
    use super::*;
    #[derive(Serialize, Deserialize)]
    pub(crate) struct User {
        pub(crate) id: u64,
        pub(crate) name: String,
    }
    #[derive(Serialize, Deserialize)]
    pub(crate) enum Shape {
        Circle(f64),
        Rect { w: f64, h: f64 },
        Empty,
    }
}

mod v2 {
    use super::*;
    /// Same fields as `v1::User`, another name.
    #[derive(Serialize, Deserialize)]
    pub(crate) struct Account {
        pub(crate) id: u64,
        pub(crate) name: String,
    }
    #[derive(Serialize, Deserialize)]
    pub(crate) struct UserWideId {
        pub(crate) id: u128,
        pub(crate) name: String,
    }
    #[derive(Serialize, Deserialize)]
    pub(crate) struct UserWithEmail {
        pub(crate) id: u64,
        pub(crate) name: String,
        pub(crate) email: String,
    }
    #[derive(Serialize, Deserialize)]
    pub(crate) struct UserSwapped {
        pub(crate) name: String,
        pub(crate) id: u64,
    }
    #[derive(Serialize, Deserialize)]
    pub(crate) struct UserRenamedField {
        pub(crate) uid: u64,
        pub(crate) name: String,
    }
    #[derive(Serialize, Deserialize)]
    pub(crate) enum Shape {
        Circle(f64),
        Rect { w: f64, h: f64 },
        Empty,
        Triangle(f64, f64, f64),
    }
}

#[test]
fn primitives_are_told_apart() {
    assert_eq!(text::<i32>(), "i32");
    assert_eq!(text::<u32>(), "u32");
    assert_ne!(text::<i32>(), text::<u32>());
    assert_eq!(text::<String>(), "str");
    assert_eq!(text::<Vec<u8>>(), "seq<u8>");
    assert_ne!(text::<String>(), text::<Vec<u8>>());
    assert_eq!(text::<()>(), "unit");
    assert_eq!(text::<bool>(), "bool");
    assert_eq!(text::<char>(), "char");
    assert_eq!(text::<f64>(), "f64");
}

#[test]
fn collections_options_and_tuples() {
    assert_eq!(text::<Option<i8>>(), "option<i8>");
    assert_eq!(text::<Vec<String>>(), "seq<str>");
    assert_eq!(text::<BTreeMap<String, u16>>(), "map<str,u16>");
    assert_eq!(text::<HashMap<String, u16>>(), text::<BTreeMap<String, u16>>());
    assert_eq!(text::<(u8, String)>(), "(u8,str)");
    assert_eq!(text::<(u8,)>(), "(u8,)");
    // An array is a tuple on the wire, in postcard and JSON alike.
    assert_eq!(text::<[u8; 4]>(), "[u8;4]");
    assert_eq!(text::<(u8, u8, u8, u8)>(), "[u8;4]");
}

#[test]
fn structs_show_field_names_types_and_order() {
    assert_eq!(text::<v1::User>(), "{id:u64,name:str}");
    assert_ne!(text::<v1::User>(), text::<v2::UserWideId>(), "a field's type");
    assert_ne!(text::<v1::User>(), text::<v2::UserWithEmail>(), "a field added");
    assert_ne!(text::<v1::User>(), text::<v2::UserSwapped>(), "field order");
    assert_ne!(text::<v1::User>(), text::<v2::UserRenamedField>(), "a field's name (JSON writes it)");
}

#[test]
fn a_renamed_type_with_the_same_shape_is_the_same() {
    assert_eq!(text::<v1::User>(), text::<v2::Account>());
    assert_eq!(text::<Vec<v1::User>>(), text::<Vec<v2::Account>>());
}

#[test]
fn enums_show_every_variant() {
    assert_eq!(text::<v1::Shape>(), "enum{Circle:f64,Rect:{w:f64,h:f64},Empty}");
    assert_ne!(text::<v1::Shape>(), text::<v2::Shape>(), "a variant added");
}

#[derive(Serialize, Deserialize)]
enum Inner {
    A,
    B(u8),
    C(String),
    D { x: i16 },
}

#[derive(Serialize, Deserialize)]
enum Outer {
    First,
    Second(Inner),
    Third(Box<Outer>),
}

#[test]
fn enums_nested_in_later_variants_are_traced_in_full() {
    assert_eq!(text::<Result<u32, Inner>>(), "enum{Ok:u32,Err:enum{A,B:u8,C:str,D:{x:i16}}}");
    assert_eq!(text::<Outer>(), "#0=enum{First,Second:enum{A,B:u8,C:str,D:{x:i16}},Third:@0}");
}

#[derive(Serialize, Deserialize)]
struct Page<T> {
    items: Vec<T>,
}

#[test]
fn two_instantiations_of_a_generic_type_stay_apart() {
    assert_eq!(text::<(Page<u32>, Page<String>)>(), "({items:seq<u32>},{items:seq<str>})");
}

#[derive(Serialize, Deserialize)]
struct Node {
    value: i32,
    children: Vec<Node>,
    next: Option<Box<Node>>,
}

#[derive(Serialize, Deserialize)]
enum List {
    Cons(i32, Box<List>),
    Nil,
}

#[derive(Serialize, Deserialize)]
struct Meters(u32);

#[derive(Serialize, Deserialize)]
struct Tree(Vec<Tree>);

#[test]
fn recursive_types_refer_back() {
    assert_eq!(text::<Node>(), "#0={value:i32,children:seq<@0>,next:option<@0>}");
    assert_eq!(text::<List>(), "#0=enum{Cons:(i32,@0),Nil}");
    assert_eq!(text::<Tree>(), "#0=seq<@0>");
    // Two uses of one recursive type, side by side, each labelled.
    assert_eq!(text::<(List, List)>(), "(#0=enum{Cons:(i32,@0),Nil},#1=enum{Cons:(i32,@1),Nil})");
}

#[test]
fn a_newtype_is_its_content() {
    assert_eq!(text::<Meters>(), "u32");
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    A(u8),
    B(String),
}

#[derive(Serialize, Deserialize)]
struct Picky(#[serde(deserialize_with = "never")] u8);

fn never<'de, D: serde::Deserializer<'de>>(_: D) -> Result<u8, D::Error> {
    Err(serde::de::Error::custom("no synthetic values, please"))
}

#[derive(Serialize)]
struct Panicky;

impl<'de> Deserialize<'de> for Panicky {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("a Deserialize impl that panics")
    }
}

#[test]
fn types_that_cannot_be_traced_are_opaque() {
    let d = describe::<Panicky>();
    assert!(d.is_opaque(), "a panicking impl is opaque, not a panic");
    let d = describe::<Untagged>();
    assert!(d.is_opaque());
    assert_eq!(d.canonical(), format!("opaque<{}>", std::any::type_name::<Untagged>()));
    let d = describe::<Picky>();
    assert!(d.is_opaque());
    assert!(d.canonical().starts_with("opaque<") && d.canonical().ends_with("Picky>"));
    // Opaque inside a larger type makes the whole type opaque.
    assert!(describe::<Vec<Untagged>>().is_opaque());
}

#[test]
fn descriptions_are_stable_across_calls() {
    assert_eq!(describe::<Outer>(), describe::<Outer>());
    assert_eq!(describe::<Node>(), describe::<Node>());
}

#[test]
fn the_hash_is_fnv1a_64_of_the_signature_text() {
    // Published FNV-1a 64 test vectors.
    assert_eq!(signature_hash(""), 0xcbf29ce484222325);
    assert_eq!(signature_hash("a"), 0xaf63dc4c8601ec8c);
    assert_eq!(signature_hash("foobar"), 0x85944171f73967e8);
    let add = MethodDescriptor::new(
        "add",
        MethodKind::Unary,
        [("a", describe::<i32>()), ("b", describe::<i32>())],
        describe::<i32>(),
    );
    assert_eq!(add.signature(), "unary (i32,i32)->i32");
    assert_eq!(add.signature_hash(), signature_hash("unary (i32,i32)->i32"));
}

#[test]
fn argument_names_are_not_hashed_but_their_count_and_types_are() {
    let method = |args: Vec<(&'static str, rpc_runtime::describe::TypeDescription)>| {
        MethodDescriptor::new("add", MethodKind::Unary, args, describe::<i32>()).signature_hash()
    };
    let base = method(vec![("a", describe::<i32>()), ("b", describe::<i32>())]);
    assert_eq!(base, method(vec![("x", describe::<i32>()), ("y", describe::<i32>())]));
    assert_ne!(base, method(vec![("a", describe::<u32>()), ("b", describe::<u32>())]));
    assert_ne!(base, method(vec![("a", describe::<i32>())]));
    assert_ne!(
        base,
        method(vec![("a", describe::<i32>()), ("b", describe::<i32>()), ("c", describe::<i32>())])
    );
    let oneway = MethodDescriptor::new(
        "add",
        MethodKind::Oneway,
        [("a", describe::<i32>()), ("b", describe::<i32>())],
        describe::<i32>(),
    );
    assert_ne!(base, oneway.signature_hash(), "the kind is hashed");
}
