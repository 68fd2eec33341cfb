//! verify catches a flipped byte, a missing file and a truncated tail, and
//! restore writes nothing from a damaged archive.
