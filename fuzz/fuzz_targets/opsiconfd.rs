#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| opsi_backup::fuzz::opsiconfd(data));
