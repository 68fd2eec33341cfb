//! CircleCI's own circleci_export.tar.gz restores.
