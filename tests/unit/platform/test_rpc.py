"""The shared gRPC options and the reconnect backoff."""

from __future__ import annotations

from streamplane.platform import rpc


def test_channels_and_servers_share_the_message_bound() -> None:
    for options in (rpc.channel_options(), rpc.channel_options(True), rpc.server_options()):
        values = dict(options)
        assert values["grpc.max_receive_message_length"] == rpc.MAX_MESSAGE_BYTES
        assert values["grpc.max_send_message_length"] == rpc.MAX_MESSAGE_BYTES
    assert "grpc.max_reconnect_backoff_ms" in dict(rpc.channel_options(fast_reconnect=True))
    assert "grpc.max_reconnect_backoff_ms" not in dict(rpc.channel_options())
    assert dict(rpc.server_options())["grpc.keepalive_permit_without_calls"] == 1


def test_reconnect_doubles_to_its_cap_and_resets() -> None:
    reconnect = rpc.Reconnect(0.1, 1.0, jitter=lambda: 0.5)  # 0.5 + 0.5: no jitter
    delays = [reconnect.next_delay() for _ in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    reconnect.reset()
    assert reconnect.next_delay() == 0.1


def test_reconnect_jitter_spans_half_to_one_and_a_half() -> None:
    low = rpc.Reconnect(1.0, 10.0, jitter=lambda: 0.0).next_delay()
    high = rpc.Reconnect(1.0, 10.0, jitter=lambda: 0.999).next_delay()
    assert low == 0.5
    assert 1.49 < high < 1.5
