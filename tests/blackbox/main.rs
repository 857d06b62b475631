//! The black-box suite: every case runs against every build of wasiter, with
//! real peers on loopback (nginx + curl, redis-server + redis-benchmark, and
//! small std::net servers for the exact behaviours: speaking first,
//! half-closing, resetting).
//!
//! `native::*` and `wasmtime::*` run by default. `wasmedge::*` and
//! `wasmedge_aot::*` are ignored unless asked for: `scripts/test` runs them
//! when `wasmedge` is on PATH and says SKIPPED loudly when it is not.
#![cfg(unix)]

#[path = "../harness/mod.rs"]
mod harness;
mod dns_server;
mod egress;
mod escape;
mod escape_names;
mod faults;
mod forward;
mod limits;
mod learner;
mod load;
mod naming;
mod nagle;
mod observability;
mod parent;
mod relaying;
mod reload;
mod routing;
mod socks;
mod startup;
mod stalls;
mod tls;
mod transparent;
mod udp;
mod bursts;
mod attack;
mod keys;
mod keys_ca;
mod keys_git;
mod keys_peers;
mod kept;
mod keys_rules;
mod escape_keys;
mod ask;
mod ask_admin;
mod ask_api;
mod ask_limits;
mod ask_scopes;
mod budgets;
mod identity;
mod identity_more;
mod presets_clients;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use harness::*;
// Every case, by topic; the macro below runs each on every runtime.
use dns_server::*;
use egress::*;
use kept::*;
use escape::*;
use escape_names::*;
use attack::*;
use escape_keys::*;
use budgets::*;
use faults::*;
use forward::*;
use limits::*;
use learner::*;
use load::*;
use naming::*;
use nagle::*;
use observability::*;
use parent::*;
use relaying::*;
use reload::*;
use routing::*;
use socks::*;
use startup::*;
use stalls::*;
use tls::*;
use transparent::*;
use udp::*;
use bursts::*;
use keys::*;
use keys_ca::*;
use keys_git::*;
use keys_rules::*;
use ask::*;
use ask_admin::*;
use ask_api::*;
use ask_limits::*;
use ask_scopes::*;
use identity::*;
use identity_more::*;
use presets_clients::*;

macro_rules! every_runtime {
    ($($case:ident),* $(,)?) => {
        mod native { $( #[test] fn $case() { super::$case(super::Runtime::Native) } )* }
        mod wasmtime { $( #[test] fn $case() { super::$case(super::Runtime::Wasmtime) } )* }
        mod wasmedge { $(
            #[test]
            #[ignore = "needs wasmedge on PATH: scripts/test runs it"]
            fn $case() { super::$case(super::Runtime::WasmEdge) }
        )* }
        mod wasmedge_aot { $(
            #[test]
            #[ignore = "needs wasmedge on PATH: scripts/test runs it"]
            fn $case() { super::$case(super::Runtime::WasmEdgeAot) }
        )* }
    };
}

every_runtime!(
    udp_relay_carries_dns_and_keeps_flows_apart,
    a_silent_udp_flow_expires_and_a_full_table_drops_the_idlest,
    an_unreachable_udp_server_is_marked_down_and_skipped,
    iperf3_udp_crosses_the_relay_both_ways,
    a_range_of_ten_ports_reaches_ten_servers,
    unix_socket_ends_work_natively_and_are_refused_clearly_on_wasm,
    tunnel_tls_name_is_bound_to_the_connect_target,
    tunnel_plain_request_must_name_the_connect_host,
    plain_requests_carry_the_targets_host,
    each_request_on_a_kept_alive_connection_goes_to_its_own_host,
    addresses_outside_the_list_are_refused_where_no_packet_can_leave,
    refusals_explain_themselves_and_every_decision_is_logged,
    report_mode_lets_unlisted_names_through_and_drafts_the_list,
    a_websocket_upgrade_becomes_a_tunnel_to_its_destination,
    connections_to_a_destination_are_kept_for_the_next_request,
    a_busy_destinations_clients_each_find_a_kept_connection,
    http_download_of_8_mib_arrives_intact,
    large_bodies_cross_both_ways_at_once,
    fifty_concurrent_clients_each_get_their_own_bytes,
    idle_client_does_not_block_others,
    server_that_speaks_first_is_heard,
    client_half_close_still_gets_the_answer,
    server_half_close_keeps_the_client_direction_open,
    pipelined_redis_benchmark_completes,
    refused_upstream_closes_the_client_and_recovers,
    client_reset_mid_transfer_ends_only_that_pair,
    upstream_reset_mid_transfer_closes_the_client,
    upstream_closing_while_the_client_sends_is_survived,
    idle_timeout_closes_a_silent_pair,
    connect_timeout_closes_the_client,
    connection_limit_holds_back_extra_clients,
    log_names_the_real_client_address,
    upstream_name_is_resolved,
    malformed_configuration_is_one_line_and_exit_2,
    unresolvable_remote_is_a_clear_error,
    help_and_version_answer,
    every_close_reason_is_logged_in_text_and_json,
    log_level_filters_per_connection_lines,
    dump_shows_the_exact_bytes_both_ways,
    dump_is_capped_per_connection,
    metrics_count_what_happened,
    metrics_are_off_by_default,
    trace_names_the_socket_calls,
    summary_reports_totals,
    upstream_that_never_answers_is_bounded_by_the_idle_timeout,
    half_closed_pair_that_never_finishes_leaves_no_socket_behind,
    running_out_of_descriptors_does_not_spin_and_recovers,
    slow_peers_keep_memory_flat_and_others_unaffected,
    soak_of_short_connections_and_a_bulk_stream_returns_to_baseline,
    ipv6_listen_and_upstream_addresses_work,
    two_routes_are_served_by_one_process,
    a_dead_upstream_in_a_pool_is_skipped_after_the_threshold,
    round_robin_spreads_and_least_conn_fills_the_emptiest,
    every_upstream_down_closes_the_client_at_once,
    active_health_checks_find_a_dead_upstream_and_its_return,
    names_are_resolved_again_on_schedule,
    denied_clients_never_reach_the_upstream,
    send_proxy_v1_and_v2_tell_a_real_haproxy_the_client,
    accept_proxy_takes_the_client_from_a_load_balancer,
    a_missing_or_bad_proxy_header_is_closed_and_logged,
    quiet_connections_are_served_and_timed_out_while_others_are_busy,
    answers_in_two_pieces_are_not_stalled_by_nagle,
    requests_in_two_pieces_are_not_stalled_by_nagle,
    the_start_line_says_whether_nagle_is_off_and_holds_are_traced,
    tls_clients_reach_the_server_of_the_name_they_ask_for,
    an_unknown_name_gets_a_tls_alert_and_never_reaches_an_upstream,
    alpn_sends_h2_and_http1_clients_to_their_own_servers,
    plain_http_is_routed_by_its_host_header,
    a_client_hello_in_pieces_is_reassembled_and_relayed_unchanged,
    silent_garbage_and_oversized_clients_are_closed_with_their_reason,
    accept_proxy_comes_first_then_the_peek,
    the_name_asked_is_in_json_logs_the_dump_and_the_trace,
    connect_and_plain_requests_reach_allowed_names,
    forward_policy_refuses_names_ports_and_addresses,
    dns_failures_timeouts_and_truncation,
    a_slow_dns_answer_delays_no_one_else,
    names_resolve_as_containers_expect,
    a_busy_address_is_named_in_words,
    sigterm_drains_open_connections_then_stops,
    routes_reload_while_traffic_runs_without_dropping_anything,
    a_forward_route_with_auth_asks_for_a_login,
    socks5_and_http_clients_share_one_port,
    socks5_refusals_carry_the_rfc_codes,
    socks5_login_is_checked_and_never_logged,
    socks5_tunnels_are_bound_to_the_name_asked,
    ssh_goes_through_socks5_as_its_proxy_command,
    a_transparent_listener_follows_the_server_name,
    a_transparent_listener_checks_each_request_by_its_host,
    redirected_connections_reach_only_allowed_names,
    the_dns_route_answers_only_allowed_names,
    a_dns_route_follows_the_routes_file,
    a_locked_namespace_leaves_no_way_around_the_list,
    a_parent_proxy_carries_what_the_allowlist_lets_through,
    a_parent_that_refuses_or_fails_is_named_in_the_answer,
    tls_is_terminated_in_front_of_a_plain_server,
    tls_the_server_picks_the_suite_its_runtime_is_fast_at,
    tls_certificates_are_chosen_by_the_name_asked,
    tls_alpn_h2_goes_to_the_route_that_offers_it,
    tls_garbage_instead_of_a_client_hello_gets_an_alert,
    tls_to_the_upstream_is_verified_against_its_ca,
    tls_an_expired_upstream_certificate_is_refused,
    // Issue 43: the forward proxy against a client that wants out (escape.rs).
    framing_read_from_a_dropped_header_is_refused,
    a_response_that_plays_the_same_tricks_closes_both_sides,
    every_request_in_a_plain_tunnel_is_read_and_checked,
    h2c_and_other_upgrades_are_dropped_on_forward_routes,
    ip_literals_pass_only_where_to_names_them,
    // The host's limits: descriptors and the listen backlog (issue 44).
    at_the_fd_limit_clients_wait_in_the_backlog_and_all_are_served,
    the_start_line_and_check_tell_the_descriptors_it_really_has,
    the_listen_backlog_is_what_backlog_asks,
    a_limit_lowered_while_running_is_learned_from_the_first_refusal,
    // Issue 44: bursts of datagrams, sized buffers, the kernel's drops counted.
    a_udp_burst_waits_in_a_sized_buffer_and_kernel_drops_are_counted,
    // Issue 44: the lock-down lets the proxy out over IPv6 (neighbour discovery).
    a_locked_namespace_lets_the_proxy_out_over_ipv4_and_ipv6,
    // What the proxy writes that nobody takes (issue 44: a log pipe nobody reads).
    a_log_pipe_nobody_reads_stops_no_client,
    // Issue 48: the learner's trace, from the listener's first call (learner.rs;
    // the examples' own tests are there too, outside this list: one runtime each).
    the_trace_starts_at_the_listener_and_labels_the_nagle_probe,
    // Getting out by the name (issue 43): bad names, two server names, a DNS client that never reads.
    names_no_pattern_was_written_for_never_reach_a_destination,
    a_transparent_listener_refuses_bad_names_in_host_and_sni,
    the_dns_route_refuses_bad_names_in_questions,
    two_server_names_are_refused_in_a_tunnel_and_on_a_shared_port,
    a_dns_client_that_never_reads_is_held_to_a_bound,
    the_search_list_never_makes_a_name_the_policy_refuses,
    // What still got past after issue 43 (attack.rs): framing values read past odd space, trailers that are requests.
    a_framing_value_is_trimmed_of_space_and_tab_alone,
    a_trailer_line_that_is_not_a_field_is_refused,
    // Issue 45: keys the sandbox never holds (keys*.rs): TLS opened for listed
    // names, placeholders swapped for real values, method and path rules.
    curl_sends_a_placeholder_and_only_the_origin_gets_the_token,
    python_urllib_and_requests_send_a_placeholder_and_read_it_back,
    node_sends_a_placeholder_and_reads_it_back,
    git_clones_and_pushes_through_the_proxy_with_a_placeholder,
    a_placeholder_on_its_way_anywhere_else_is_refused_as_a_leak,
    a_clients_own_token_passes_unchanged,
    method_and_path_rules_refuse_what_they_do_not_allow,
    a_name_not_listed_for_opening_stays_a_tunnel,
    a_wrong_upstream_certificate_is_refused_with_its_reason,
    no_log_line_carries_a_value_with_trace_and_dump_on,
    a_changed_secrets_file_is_used_on_a_connection_kept_open,
    the_ca_is_made_once_and_its_leaves_are_short_lived,
    a_secrets_file_others_can_read_is_refused_at_start,
    // Keys the sandbox never holds, attacked from inside (escape_keys.rs).
    an_echo_in_chunk_extensions_trailers_or_a_compressed_body_never_reaches_the_sandbox,
    a_method_override_header_meets_the_method_rules,
    // Issue 46, the admin side (ask_admin.rs): the JSON API and wasiter ask.
    the_admin_api_and_the_cli_answer_a_held_request,
    // Issue 46: ask a person (ask*.rs): every way out held, then answered
    // through the admin API; each scope; the bounds; the API's checks; the
    // page in a real browser.
    every_way_out_is_held_until_a_person_answers,
    a_dns_question_is_withheld_until_its_answer,
    each_answer_reaches_as_far_as_its_scope,
    an_unanswered_question_times_out_with_its_own_rule,
    identical_questions_are_one_and_held_clients_are_bounded,
    held_clients_count_toward_max_conns,
    what_the_rules_refuse_is_never_asked,
    an_unlisted_name_is_looked_up_only_after_an_allow,
    the_admin_api_wants_its_token_and_a_page_of_its_own,
    the_admin_page_shows_questions_and_its_buttons_answer_them,
    // Issue 47: budgets per destination (budgets.rs).
    budgets_refuse_past_their_limits_and_a_new_window_starts_afresh,
    a_bad_budget_says_what_is_wrong,
    // Issue 47 item 2: a policy per client on one address (identity*.rs).
    two_clients_on_one_address_each_reach_only_their_own_list,
    nothing_a_client_sends_takes_another_clients_policy,
    a_reload_changes_one_clients_policy_and_keeps_its_open_tunnel,
    budgets_and_ask_grants_are_each_clients_own,
    unix_peers_get_the_policy_of_their_uid,
    sharing_an_address_wrongly_is_one_line_and_a_failed_start,
    a_login_chooses_the_policy_where_no_address_does,
    // Issue 47: presets against the real clients (presets_clients.rs): pip,
    // cargo, git and npm with their preset alone, and refused without it.
    pip_cargo_git_and_npm_install_with_their_preset_alone,
);
