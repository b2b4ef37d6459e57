//! Synchronization of each user's calendar events and tasks with Outlook Calendar and
//! Microsoft To Do.

pub mod links;
