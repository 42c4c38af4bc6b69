//! Integration tests: the real `bluegreen` binary, real NGINX, real files, each test in its
//! own temp dir with its own ports.

mod util;

mod add_data;
mod automatic;
mod byod;
mod check;
mod cli;
mod dashboard;
mod deploy;
mod docs;
pub mod faults;
mod fleet;
mod flips;
mod incremental;
mod load;
mod logs;
mod paths;
mod progress;
mod protocols;
mod readme;
mod restart;
mod rollout;
mod serve;
mod shadow;
mod site;
mod socket_mode;
mod status;
mod train;
mod transfer;
