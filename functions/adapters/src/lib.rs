//! Adapters: each module implements domain ports against one outside system.

pub mod aws;
