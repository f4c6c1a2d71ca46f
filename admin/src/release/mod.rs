pub mod document;
pub mod publish;
