#![cfg(all(feature = "http", feature = "sqlite"))]
