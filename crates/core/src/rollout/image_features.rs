//! Image tags for jobs (issue 20): the workload-manager feature that names
//! the image a node was upgraded to, `img_<template>`, so a multi-node job
//! can ask (`--constraint=img_<template>`) to run on one image only.
//!
//! These are the pure rules: the feature's name, and a node's feature list
//! with it. A node has at most one image feature: any older `img_*` one is
//! replaced, every other feature is kept in its order.

/// The prefix of every image feature crus writes.
pub const IMAGE_FEATURE_PREFIX: &str = "img_";

/// The feature naming `template`: `img_` and the template with every
/// character other than an ASCII letter, a digit or `_` made `_`, so that
/// Slurm accepts it in a feature list and in a `--constraint` expression
/// (where `&`, `|`, `,`, `:`, `*`, `!`, brackets and spaces are operators or
/// separators).
pub fn image_feature(template: &str) -> String {
    let name: String = template
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{IMAGE_FEATURE_PREFIX}{name}")
}

/// `features` with the image feature of `template` in place of any image
/// feature they had, the others kept in their order.
pub fn with_image_feature(features: &[String], template: &str) -> Vec<String> {
    let mut kept: Vec<String> = features
        .iter()
        .filter(|feature| !feature.starts_with(IMAGE_FEATURE_PREFIX))
        .cloned()
        .collect();
    kept.push(image_feature(template));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_becomes_a_plain_feature_name() {
        assert_eq!(image_feature("compute-image"), "img_compute_image");
        assert_eq!(image_feature("cos 2.5/x86_64"), "img_cos_2_5_x86_64");
        assert_eq!(image_feature("sles15sp5"), "img_sles15sp5");
        assert_eq!(image_feature("a&b|c,d:e*f!g(h)"), "img_a_b_c_d_e_f_g_h_");
    }

    #[test]
    fn the_old_image_feature_is_replaced_and_the_others_kept() {
        let features = ["gpu", "img_old", "bigmem"].map(str::to_string);
        assert_eq!(
            with_image_feature(&features, "new"),
            ["gpu", "bigmem", "img_new"].map(str::to_string)
        );
        assert_eq!(with_image_feature(&[], "new"), ["img_new".to_string()]);
    }
}
