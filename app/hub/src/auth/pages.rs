//! The pages of signing in: claim, login, logout, one's account (password, second factor),
//! users and API tokens.

use super::access::Pages;

pub fn pages() -> Pages {
    Pages::new()
}
