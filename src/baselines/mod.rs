//! Baseline coders scored beside the models, one file each.

pub mod dictionary;

pub use dictionary::DictionaryCoder;
