//! Launch templates: the Services machine's user data lives in one.

use crate::client::{Params, Reply, child, items, text, text_of};
use crate::{Ec2, Error};

/// A launch template as EC2 describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaunchTemplate {
    /// `lt-…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The version instances launch with by default.
    pub default_version: Option<i64>,
    /// The newest version.
    pub latest_version: Option<i64>,
}

impl LaunchTemplate {
    fn from_node(node: roxmltree::Node<'_, '_>) -> Option<LaunchTemplate> {
        Some(LaunchTemplate {
            id: text(node, "launchTemplateId")?,
            name: text(node, "launchTemplateName").unwrap_or_default(),
            default_version: text(node, "defaultVersionNumber").and_then(|v| v.parse().ok()),
            latest_version: text(node, "latestVersionNumber").and_then(|v| v.parse().ok()),
        })
    }
}

/// One version of a launch template.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaunchTemplateVersion {
    /// Its number.
    pub number: i64,
    /// Its user data as stored (base64), if any.
    pub user_data: Option<String>,
}

impl Ec2 {
    /// `DescribeLaunchTemplates` of the template named `name` (an
    /// [`Error::Api`] when there is none).
    pub async fn launch_template(&self, name: &str) -> Result<LaunchTemplate, Error> {
        const ACTION: &str = "DescribeLaunchTemplates";
        let body = self
            .call(ACTION, Params::default().add("LaunchTemplateName.1", name))
            .await?;
        let reply = Reply::parse(ACTION, &body)?;
        items(reply.root(), "launchTemplates")
            .find_map(LaunchTemplate::from_node)
            .ok_or_else(|| reply.missing("launch template"))
    }

    /// `DescribeLaunchTemplateVersions` of `$Latest` of the template named
    /// `name`: `None` when it has no version.
    pub async fn latest_launch_template_version(
        &self,
        name: &str,
    ) -> Result<Option<LaunchTemplateVersion>, Error> {
        const ACTION: &str = "DescribeLaunchTemplateVersions";
        let params = Params::default()
            .add("LaunchTemplateName", name)
            .add("LaunchTemplateVersion.1", "$Latest");
        let body = self.call(ACTION, params).await?;
        let reply = Reply::parse(ACTION, &body)?;
        Ok(
            items(reply.root(), "launchTemplateVersionSet").find_map(|item| {
                Some(LaunchTemplateVersion {
                    number: text(item, "versionNumber")?.parse().ok()?,
                    user_data: child(item, "launchTemplateData")
                        .and_then(|data| text(data, "userData"))
                        .filter(|u| !u.is_empty()),
                })
            }),
        )
    }

    /// `CreateLaunchTemplateVersion` of the template named `name`: version
    /// `source_version` with `user_data` (base64) instead of its own,
    /// described as `description`. The new version's number.
    pub async fn create_launch_template_version(
        &self,
        name: &str,
        source_version: i64,
        description: &str,
        user_data: &str,
    ) -> Result<i64, Error> {
        const ACTION: &str = "CreateLaunchTemplateVersion";
        let params = Params::default()
            .add("LaunchTemplateName", name)
            .add("SourceVersion", source_version.to_string())
            .add("VersionDescription", description)
            .add("LaunchTemplateData.UserData", user_data);
        let body = self.call(ACTION, params).await?;
        let reply = Reply::parse(ACTION, &body)?;
        child(reply.root(), "launchTemplateVersion")
            .and_then(|v| text(v, "versionNumber"))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| reply.missing("versionNumber"))
    }

    /// `ModifyLaunchTemplate`: instances launched from the template named
    /// `name` get `version` by default.
    pub async fn set_default_launch_template_version(
        &self,
        name: &str,
        version: i64,
    ) -> Result<(), Error> {
        let params = Params::default()
            .add("LaunchTemplateName", name)
            .add("SetDefaultVersion", version.to_string());
        self.call("ModifyLaunchTemplate", params).await.map(drop)
    }

    /// `CreateLaunchTemplate` named `name` launching `image_id` (its first
    /// version).
    pub async fn create_launch_template(
        &self,
        name: &str,
        image_id: &str,
    ) -> Result<LaunchTemplate, Error> {
        const ACTION: &str = "CreateLaunchTemplate";
        let params = Params::default()
            .add("LaunchTemplateName", name)
            .add("LaunchTemplateData.ImageId", image_id);
        let body = self.call(ACTION, params).await?;
        let reply = Reply::parse(ACTION, &body)?;
        child(reply.root(), "launchTemplate")
            .and_then(LaunchTemplate::from_node)
            .or_else(|| {
                text_of(&reply, "launchTemplateId").map(|id| LaunchTemplate {
                    id,
                    name: name.to_owned(),
                    default_version: Some(1),
                    latest_version: Some(1),
                })
            })
            .ok_or_else(|| reply.missing("launchTemplate"))
    }
}
