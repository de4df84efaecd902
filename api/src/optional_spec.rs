//! Kinds whose `spec` may be left out. MetalLB's CRDs do not require `spec` where every field of
//! it is optional, and its samples and quick start create an L2Advertisement or a MetalLB with
//! metadata only. The root type `CustomResource` derives always holds a spec and takes no serde
//! attribute for that field, so the spec type reads an absent `spec` as its default itself.

/// A spec type that reads an absent or null `spec` as `Default::default()`; implemented by
/// [`optional_spec!`], required by [`crate::crds`] before it lets a CRD accept a missing spec.
pub(crate) trait MayBeAbsent: Default {}

/// Implements `Serialize`, `Deserialize` and [`MayBeAbsent`] for a spec type whose serde impls
/// are derived with `#[serde(remote = "Self")]`, which turns them into inherent functions that
/// these impls call. serde reads a missing field through `deserialize_option`, which an `Option`
/// answers with `None`: that is the default spec.
macro_rules! optional_spec {
    ($spec:ty) => {
        impl ::serde::Serialize for $spec {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$spec>::serialize(self, serializer)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $spec {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                struct Present($spec);

                impl<'de> ::serde::Deserialize<'de> for Present {
                    fn deserialize<D: ::serde::Deserializer<'de>>(
                        deserializer: D,
                    ) -> Result<Self, D::Error> {
                        <$spec>::deserialize(deserializer).map(Present)
                    }
                }

                let spec = <Option<Present> as ::serde::Deserialize>::deserialize(deserializer)?;
                Ok(spec.map(|present| present.0).unwrap_or_default())
            }
        }

        impl $crate::optional_spec::MayBeAbsent for $spec {}
    };
}

pub(crate) use optional_spec;
