"""The serial journal's bounds and writes: stream tails bounded like the windows, the acknowledged
position written at most every SAVE_EVERY_S, and never a record number used twice after a kill."""

import json

from edge_agent.journal import Journal


def fill(journal, samples, streams=("a",)):
    """One record per sample, round-robin over streams; the record numbers given out."""
    seqs = []
    for n in range(1, samples + 1):
        stream = streams[n % len(streams)]
        new = journal.commit((n, stream, f"{stream},{n}"), [json.dumps({"t": n})])
        seqs += [seq for seq, _ in new]
    return seqs


def test_stream_tails_are_bounded_and_the_least_recently_seen_goes_first(tmp_path):
    journal = Journal(tmp_path, capacity=1000, window_length=4, max_streams=3)
    for n, stream in enumerate(["a", "b", "c", "a", "d", "e"], start=1):
        journal.commit((n, stream, f"{stream},{n}"), [])
    assert list(journal.tails) == ["a", "d", "e"] and journal.tails_evicted == 2  # b, then c
    journal.close()
    again = Journal(tmp_path, capacity=1000, window_length=4, max_streams=3)
    assert list(again.tails) == ["a", "d", "e"]  # the replay of the file obeys the same bound
    assert again.replay == ["a,1", "a,4", "d,5", "e,6"]


def test_acknowledgements_are_written_at_most_every_few_seconds_and_on_close(tmp_path):
    journal = Journal(tmp_path, capacity=1000, window_length=4)
    seqs = fill(journal, 200)
    for seq in seqs:
        journal.ack(seq)
    state = tmp_path / "state.json"
    assert not state.exists()  # 200 acknowledgements within a moment: no write yet
    journal.close()
    assert json.loads(state.read_text())["acked"] == 200


def test_after_a_kill_the_lagging_position_resends_and_never_reuses_a_record_number(tmp_path):
    journal = Journal(tmp_path, capacity=1000, window_length=4)
    for seq in fill(journal, 50):
        journal.ack(seq)
    journal.file.close()  # killed: no close(), state.json never written
    again = Journal(tmp_path, capacity=1000, window_length=4)
    assert again.acked == 0 and list(again.unacked) == list(range(1, 51))  # resent; the host drops duplicates
    assert again.next_seq == 51


def test_a_compaction_saves_the_position_first_so_numbers_go_on_after_a_kill(tmp_path):
    journal = Journal(tmp_path, capacity=10, window_length=4)
    for n in range(1, 501):  # as the link does: each sample journaled, then acknowledged by the host
        ((seq, _),) = journal.commit((n, "ab"[n % 2], f"x,{n}"), [json.dumps({"t": n})])
        journal.ack(seq)  # compacts each time the file passes 4 * (capacity + 100) lines
    assert journal._lines < 2 * 500  # it did compact
    journal.file.close()  # killed
    again = Journal(tmp_path, capacity=10, window_length=4)
    saved = json.loads((tmp_path / "state.json").read_text())["acked"]
    assert saved >= 400 and again.acked == saved  # written by the last compaction, not by each ack
    kept = list(range(max(saved + 1, 501 - 10), 501))  # the newest `capacity` of those it must resend
    assert again.next_seq == 501 and list(again.unacked) == kept
