//! The fixture personas (ARCHITECTURE.md "Contracts between crates"), by role.

/// A fixture user, named for the test role it plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Persona {
    /// Contoso, ordinary user.
    Adele,
    /// Contoso, pilot-group member.
    Alex,
    /// Contoso, outside the pilot group.
    Diego,
    /// Contoso admin, pilot member.
    Megan,
    /// Contoso, disabled account.
    Lynne,
    /// Contoso, MFA required by Conditional Access.
    Isaiah,
    /// Contoso, non-compliant device.
    Nestor,
    /// Contoso, IP-restricted.
    Joni,
    /// Contoso user whose mail is in Fabrikam's domain.
    PradeepContoso,
    /// Fabrikam's Adele (same display name as Contoso's).
    AdeleFabrikam,
    PradeepFabrikam,
    Lee,
    /// Tailspin (consented, not enabled in the connector's default policy).
    Miriam,
    Johanna,
    /// Northwind (never consented).
    Nancy,
    Andrew,
    /// Personal Microsoft account (consumer tenant).
    Pat,
}

impl Persona {
    /// The user principal name the persona signs in with.
    pub fn upn(self) -> &'static str {
        match self {
            Self::Adele => "adele@contoso.com",
            Self::Alex => "alex@contoso.com",
            Self::Diego => "diego@contoso.com",
            Self::Megan => "megan@contoso.com",
            Self::Lynne => "lynne@contoso.com",
            Self::Isaiah => "isaiah@contoso.com",
            Self::Nestor => "nestor@contoso.com",
            Self::Joni => "joni@contoso.com",
            Self::PradeepContoso => "pradeep@contoso.com",
            Self::AdeleFabrikam => "adele@fabrikam.com",
            Self::PradeepFabrikam => "pradeep@fabrikam.com",
            Self::Lee => "lee@fabrikam.com",
            Self::Miriam => "miriam@tailspintoys.com",
            Self::Johanna => "johanna@tailspintoys.com",
            Self::Nancy => "nancy@northwind.com",
            Self::Andrew => "andrew@northwind.com",
            Self::Pat => "pat@outlook.com",
        }
    }

    /// Every persona, for the sandbox listing.
    pub const ALL: [Persona; 17] = [
        Self::Adele,
        Self::Alex,
        Self::Diego,
        Self::Megan,
        Self::Lynne,
        Self::Isaiah,
        Self::Nestor,
        Self::Joni,
        Self::PradeepContoso,
        Self::AdeleFabrikam,
        Self::PradeepFabrikam,
        Self::Lee,
        Self::Miriam,
        Self::Johanna,
        Self::Nancy,
        Self::Andrew,
        Self::Pat,
    ];
}
