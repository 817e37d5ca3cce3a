//! Certificates made at test time (rcgen): a CA of the test's own, and server and client
//! certificates it signs, written as PEM files where the processes read them. Nothing is
//! committed, so nothing expires in the repository.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use sha2::{Digest as _, Sha256};

/// A certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A server (`localhost` and `127.0.0.1`).
    Server,
    /// A client of mutual TLS.
    Client,
}

/// A certificate and its key.
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::new()).expect("no names is valid");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a key can be generated");
        let cert = params.self_signed(&key).expect("a CA can sign itself");
        Self {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the CA certificate to `dir/<name>.pem`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, &self.pem).expect("the CA file can be written");
        path
    }

    /// A certificate for `role`, valid now.
    pub fn issue(&self, name: &str, role: Role) -> Issued {
        self.issue_valid(name, role, true)
    }

    /// A certificate for `role` that expired years ago (`valid` false).
    pub fn issue_valid(&self, name: &str, role: Role, valid: bool) -> Issued {
        let names = match role {
            Role::Server => vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            Role::Client => Vec::new(),
        };
        let mut params = CertificateParams::new(names).expect("the names are valid");
        params.distinguished_name.push(DnType::CommonName, name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match role {
            Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if valid {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2100, 1, 1);
        } else {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("a key can be generated");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("the CA signs it");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

impl Issued {
    /// Writes `dir/<name>.pem` and `dir/<name>.key`; returns their paths. Each file is
    /// written beside and renamed into place, as a certificate renewal tool does.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        for (path, content) in [(&key, &self.key_pem), (&cert, &self.cert_pem)] {
            let partial = PathBuf::from(format!("{}.partial", path.display()));
            std::fs::write(&partial, content).expect("the file can be written");
            std::fs::rename(&partial, path).expect("the file can be renamed");
        }
        (cert, key)
    }

    /// `cert-sha256:<hex>`, how WXAUTH_CALLERS names this certificate.
    pub fn caller_credential(&self) -> String {
        format!("cert-sha256:{}", hex::encode(Sha256::digest(&self.der)))
    }
}
