//! Links from netlink: a dump of every link, and the stream of link changes.

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

use super::L2Error;
use crate::interfaces::LinkInfo;
use crate::wire::EthernetAddress;

/// What a netlink link message says about the link.
pub(crate) fn link_info(msg: &LinkMessage) -> LinkInfo {
    let flags = msg.header.flags;
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::LowerUp),
        noarp: flags.contains(LinkFlags::Noarp),
        loopback: flags.contains(LinkFlags::Loopback),
        master: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name.clone_from(name),
            LinkAttribute::Address(bytes) => {
                info.mac = <[u8; 6]>::try_from(bytes.as_slice())
                    .ok()
                    .map(EthernetAddress);
            }
            LinkAttribute::Controller(master) if *master != 0 => info.master = Some(*master),
            _ => {}
        }
    }
    info
}

/// Every link in the namespace.
pub(crate) async fn dump(handle: &rtnetlink::Handle) -> Result<Vec<LinkInfo>, L2Error> {
    let mut links = Vec::new();
    let mut stream = handle.link().get().execute();
    while let Some(msg) = stream
        .try_next()
        .await
        .map_err(|e| L2Error::Netlink(e.to_string()))?
    {
        links.push(link_info(&msg));
    }
    Ok(links)
}
