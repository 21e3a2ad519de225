//! UPDATE messages (RFC 4271 §4.3): the body's withdrawn routes, path attributes and NLRI,
//! End-of-RIB (RFC 4724 §2), and RFC 7606's handling of errors that do not reset the session
//! (treat-as-withdraw, attribute discard).

use ipnet::{IpNet, Ipv4Net};

use super::attribute::{Attribute, MpUnreach, Parsed, attr_type as t, parse_attribute};
use super::attribute::{FLAG_EXTENDED_LENGTH, FLAG_PARTIAL, encode_attribute};
use super::notification::{ErrorCode, Notification, update as sub};
use super::prefix::{decode_prefixes, encode_prefix, ipv4_prefixes};
use super::{Codec, DecodeError, EncodeError, Family, Reader};

/// An UPDATE message. IPv4 unicast routes travel in the body fields; other families in
/// [`Attribute::MpReach`] and [`Attribute::MpUnreach`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// IPv4 prefixes withdrawn.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes in wire order.
    pub attributes: Vec<Attribute>,
    /// IPv4 prefixes announced with `attributes`.
    pub nlri: Vec<Ipv4Net>,
    /// Errors found while decoding that RFC 7606 handles without closing the session. Empty
    /// for a clean message; ignored by the encoder.
    pub issues: Vec<UpdateIssue>,
}

impl Update {
    /// The End-of-RIB marker of a family (RFC 4724 §2).
    pub fn end_of_rib(family: Family) -> Self {
        if family == Family::IPV4_UNICAST {
            return Self::default();
        }
        Self {
            attributes: vec![Attribute::MpUnreach(MpUnreach {
                family,
                withdrawn: vec![],
            })],
            ..Self::default()
        }
    }

    /// The family whose End-of-RIB this message is, if it is one.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        // An UPDATE that RFC 7606 handling emptied (say, attributes only, one of them
        // malformed) had attributes on the wire, so it is not an End-of-RIB.
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() || !self.issues.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [Attribute::MpUnreach(un)] if un.withdrawn.is_empty() => Some(un.family),
            _ => None,
        }
    }

    /// Every prefix this UPDATE announces, in all families.
    pub fn announced(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self.nlri.iter().copied().map(IpNet::V4).collect();
        for a in &self.attributes {
            if let Attribute::MpReach(mp) = a {
                out.extend(mp.nlri.iter().copied());
            }
        }
        out
    }

    /// Every prefix this UPDATE withdraws, in all families.
    pub fn withdrawn_all(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self.withdrawn.iter().copied().map(IpNet::V4).collect();
        for a in &self.attributes {
            if let Attribute::MpUnreach(mp) = a {
                out.extend(mp.withdrawn.iter().copied());
            }
        }
        out
    }
}

/// How RFC 7606 handles an UPDATE error that does not reset the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Treatment {
    /// The UPDATE is handled as if it withdrew every prefix it announces.
    TreatAsWithdraw,
    /// The faulty attribute is ignored; the rest of the UPDATE stands.
    AttributeDiscard,
}

/// An UPDATE error handled without a session reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpdateIssue {
    /// Type code of the attribute at fault (0 when the fault is not in one attribute).
    pub type_code: u8,
    /// How the UPDATE was handled.
    pub treatment: Treatment,
    /// What was wrong.
    pub reason: &'static str,
}

pub(super) fn reset(subcode: u8, data: Vec<u8>, reason: &'static str) -> DecodeError {
    DecodeError::new(
        Notification::new(ErrorCode::UpdateMessage, subcode, data),
        reason,
    )
}

pub(super) fn decode(body: &[u8], codec: Codec) -> Result<Update, DecodeError> {
    let list = |reason| reset(sub::MALFORMED_ATTRIBUTE_LIST, vec![], reason);
    let mut r = Reader::new(body);
    let withdrawn_len = r
        .u16()
        .ok_or_else(|| list("withdrawn routes length missing"))?;
    let withdrawn_bytes = r
        .take(usize::from(withdrawn_len))
        .ok_or_else(|| list("withdrawn routes overrun"))?;
    let attrs_len = r
        .u16()
        .ok_or_else(|| list("path attribute length missing"))?;
    let attr_bytes = r
        .take(usize::from(attrs_len))
        .ok_or_else(|| list("path attributes overrun"))?;
    let withdrawn = ipv4_prefixes(&decode_prefixes(withdrawn_bytes, false)?);
    let nlri = ipv4_prefixes(&decode_prefixes(r.rest(), false)?);

    let mut update = Update {
        withdrawn,
        attributes: Vec::new(),
        nlri,
        issues: Vec::new(),
    };
    let mut seen = [false; 256];
    let mut withdraw = false;
    // RFC 7606 §4: an attribute whose header or value does not fit in the attribute list
    // is treat-as-withdraw; the NLRI is still found through the list's length. What follows
    // in the list cannot be parsed, so no more attributes are read.
    let mut overrun = false;
    let mut r = Reader::new(attr_bytes);
    while !r.is_empty() {
        let (flags, type_code) = (r.u8(), r.u8());
        let len = match flags {
            Some(f) if f & FLAG_EXTENDED_LENGTH != 0 => r.u16(),
            _ => r.u8().map(u16::from),
        };
        let (Some(flags), Some(value)) = (flags, len.and_then(|len| r.take(usize::from(len))))
        else {
            overrun = true;
            withdraw = true;
            update.issues.push(UpdateIssue {
                type_code: type_code.unwrap_or(0),
                treatment: Treatment::TreatAsWithdraw,
                reason: if len.is_some() {
                    "attribute overruns the attribute list"
                } else {
                    "attribute header truncated"
                },
            });
            break;
        };
        let type_code = type_code.unwrap_or(0);
        let slot = seen.get_mut(usize::from(type_code));
        if slot.as_deref() == Some(&true) {
            if matches!(type_code, t::MP_REACH_NLRI | t::MP_UNREACH_NLRI) {
                return Err(list("MP_REACH_NLRI or MP_UNREACH_NLRI repeated"));
            }
            update.issues.push(UpdateIssue {
                type_code,
                treatment: Treatment::AttributeDiscard,
                reason: "attribute repeated",
            });
            continue;
        }
        if let Some(slot) = slot {
            *slot = true;
        }
        let _ = FLAG_PARTIAL;
        match parse_attribute(flags, type_code, value, codec)? {
            Parsed::Ok(attr) => update.attributes.push(attr),
            Parsed::Issue(treatment, reason) => {
                withdraw |= treatment == Treatment::TreatAsWithdraw;
                update.issues.push(UpdateIssue {
                    type_code,
                    treatment,
                    reason,
                });
            }
        }
    }

    let has = |code: u8| seen.get(usize::from(code)).copied().unwrap_or(false);
    let reach = update
        .attributes
        .iter()
        .any(|a| matches!(a, Attribute::MpReach(m) if !m.nlri.is_empty()));
    if !overrun && (!update.nlri.is_empty() || reach) {
        let mut required = vec![t::ORIGIN, t::AS_PATH];
        if !update.nlri.is_empty() {
            required.push(t::NEXT_HOP);
        }
        if let Some(&missing) = required.iter().find(|&&c| !has(c)) {
            withdraw = true;
            update.issues.push(UpdateIssue {
                type_code: missing,
                treatment: Treatment::TreatAsWithdraw,
                reason: "missing well-known attribute",
            });
        }
    }
    if withdraw {
        treat_as_withdraw(&mut update);
    }
    Ok(update)
}

/// Turns an UPDATE into the withdrawal of everything it announced (RFC 7606 §2).
fn treat_as_withdraw(update: &mut Update) {
    let nlri = std::mem::take(&mut update.nlri);
    update.withdrawn.extend(nlri);
    let mut kept = Vec::new();
    let mut unreach: Vec<MpUnreach> = Vec::new();
    for attr in std::mem::take(&mut update.attributes) {
        match attr {
            Attribute::MpReach(mp) => unreach.push(MpUnreach {
                family: mp.family,
                withdrawn: mp.nlri,
            }),
            Attribute::MpUnreach(mp) => unreach.push(mp),
            _ => {}
        }
    }
    for mp in unreach {
        match kept
            .iter_mut()
            .find(|k: &&mut MpUnreach| k.family == mp.family)
        {
            Some(k) => k.withdrawn.extend(mp.withdrawn),
            None => kept.push(mp),
        }
    }
    update.attributes = kept.into_iter().map(Attribute::MpUnreach).collect();
}

pub(super) fn encode(update: &Update, codec: Codec, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut withdrawn = Vec::new();
    update
        .withdrawn
        .iter()
        .for_each(|p| encode_prefix(&IpNet::V4(*p), &mut withdrawn));
    let mut attrs = Vec::new();
    for a in &update.attributes {
        encode_attribute(a, codec, &mut attrs)?;
    }
    let wlen = u16::try_from(withdrawn.len())
        .map_err(|_| EncodeError::FieldTooLong("withdrawn routes"))?;
    let alen =
        u16::try_from(attrs.len()).map_err(|_| EncodeError::FieldTooLong("path attributes"))?;
    out.extend_from_slice(&wlen.to_be_bytes());
    out.extend_from_slice(&withdrawn);
    out.extend_from_slice(&alen.to_be_bytes());
    out.extend_from_slice(&attrs);
    update
        .nlri
        .iter()
        .for_each(|p| encode_prefix(&IpNet::V4(*p), out));
    Ok(())
}
