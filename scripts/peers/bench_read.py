"""Peer benchmark: read a drive with the Python `mcap` reader, the way a
Python user would. Prints one JSON object. Used by `nines bench read`."""
import json
import sys
import time

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory


def main() -> None:
    path = sys.argv[1]
    decode = "--decode" in sys.argv
    result = {"path": path}
    with open(path, "rb") as f:
        start = time.perf_counter()
        count = 0
        payload = 0
        for _schema, _channel, message in make_reader(f).iter_messages(log_time_order=True):
            count += 1
            payload += len(message.data)
        result["raw_secs"] = time.perf_counter() - start
        result["raw_messages"] = count
        result["payload_bytes"] = payload
    if decode:
        with open(path, "rb") as f:
            start = time.perf_counter()
            count = 0
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            for _schema, _channel, _message, _decoded in reader.iter_decoded_messages(log_time_order=True):
                count += 1
            result["decoded_secs"] = time.perf_counter() - start
            result["decoded_messages"] = count
    print(json.dumps(result))


if __name__ == "__main__":
    main()
