//! File capabilities: rpm's `%caps` text (`cap_net_raw=ep`) → the `security.capability`
//! xattr value (VFS_CAP_REVISION_2, as libcap's `cap_set_file` writes it).

const NAMES: &[&str] = &[
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

/// Parses `cap_a,cap_b=ep cap_c+i` (libcap's text form) into the 20-byte xattr value.
pub(crate) fn xattr(text: &str) -> Result<Vec<u8>, String> {
    let (mut permitted, mut inheritable, mut effective) = (0u64, 0u64, false);
    for clause in text.split_whitespace() {
        let split = clause
            .find(['=', '+', '-'])
            .ok_or_else(|| format!("`{clause}` has no =, + or -"))?;
        let (names, ops) = clause.split_at(split);
        let mut mask = 0u64;
        for n in names.split(',') {
            let n = n.trim().to_ascii_lowercase();
            if n == "all" || n.is_empty() {
                mask = (1u64 << NAMES.len()) - 1;
                continue;
            }
            let bit = NAMES
                .iter()
                .position(|x| *x == n)
                .ok_or_else(|| format!("unknown capability `{n}`"))?;
            mask |= 1 << bit;
        }
        let mut chars = ops.chars().peekable();
        while let Some(op) = chars.next() {
            let mut flags = String::new();
            while let Some(&c) = chars.peek() {
                if "=+-".contains(c) {
                    break;
                }
                flags.push(c);
                chars.next();
            }
            if op == '=' {
                permitted &= !mask;
                inheritable &= !mask;
            }
            for f in flags.chars() {
                let set = op != '-';
                match f {
                    'p' => {
                        permitted = if set {
                            permitted | mask
                        } else {
                            permitted & !mask
                        }
                    }
                    'i' => {
                        inheritable = if set {
                            inheritable | mask
                        } else {
                            inheritable & !mask
                        }
                    }
                    'e' => effective = set,
                    _ => return Err(format!("unknown capability flag `{f}` in `{clause}`")),
                }
            }
        }
    }
    let magic: u32 = 0x0200_0000 | u32::from(effective);
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&(permitted as u32).to_le_bytes());
    out.extend_from_slice(&(inheritable as u32).to_le_bytes());
    out.extend_from_slice(&((permitted >> 32) as u32).to_le_bytes());
    out.extend_from_slice(&((inheritable >> 32) as u32).to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_raw_ep() {
        // getcap prints cap_net_raw=ep for exactly these bytes.
        assert_eq!(
            xattr("cap_net_raw=ep").unwrap(),
            [
                1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        let v = xattr("cap_net_admin,cap_net_raw+p").unwrap();
        assert_eq!(v[0..4], [0, 0, 0, 2]);
        assert_eq!(
            u32::from_le_bytes(v[4..8].try_into().unwrap()),
            (1 << 12) | (1 << 13)
        );
        assert!(xattr("cap_bogus=ep").is_err());
    }
}
