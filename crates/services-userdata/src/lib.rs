//! The Services machine's recovery bundle for circle-ha.
//!
//! **Status: skeleton**, filled by the "services-userdata" issue: EC2
//! userdata, `replicated.conf`, `settings.conf` and the customization files,
//! rendered deterministically and published to S3 and a launch template.
