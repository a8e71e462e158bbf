//! The expansion names nothing from the prelude: it compiles in a crate without one.
#![no_implicit_prelude]
#![deny(warnings)]

#[::rpc_runtime::service]
pub trait Prelude {
    async fn echo(&self, text: ::std::string::String) -> ::std::vec::Vec<u8>;
    async fn check(
        &self,
        value: ::std::option::Option<u8>,
    ) -> ::std::result::Result<u8, ::std::string::String>;
    #[oneway]
    async fn log(&self, line: ::std::string::String);
}

struct Impl;

impl Prelude for Impl {
    async fn echo(&self, text: ::std::string::String) -> ::std::vec::Vec<u8> {
        ::std::string::String::into_bytes(text)
    }

    async fn check(
        &self,
        value: ::std::option::Option<u8>,
    ) -> ::std::result::Result<u8, ::std::string::String> {
        ::std::option::Option::ok_or_else(value, ::std::string::String::new)
    }

    async fn log(&self, _line: ::std::string::String) {}
}

pub fn main() {
    let server = PreludeServer::new(Impl);
    let _ = ::std::clone::Clone::clone(&server);
}
