# One MQTT scenario with paho-mqtt (PyPI), for test/mqtt-conformance: connect,
# subscribe, publish once subscribed, wait for the expected messages, then
# disconnect; every event is printed as one JSON line on stdout.
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes  # noqa: F401 (imported for the properties' names)

s = json.loads(sys.argv[1])
lock = threading.Lock()
done = threading.Event()
subscribed = threading.Event()
messages = []
acks = []
# done when the expected messages came and every QoS 1 PUBLISH was acknowledged (in either order: both wait for Kafka)
wanted_acks = len([1 for _t, _p, qos in s.get('publish', []) if qos > 0])


def check_done():
    if len(messages) >= s.get('expect', 0) and len(acks) >= wanted_acks:
        done.set()


def emit(**event):
    with lock:
        print(json.dumps(event), flush=True)


def code(rc):
    return rc.value if hasattr(rc, 'value') else int(rc)


def props(p):
    if p is None:
        return {}
    out = {}
    for name in getattr(p, 'names', {}):
        attr = name.replace(' ', '')
        if hasattr(p, attr):
            value = getattr(p, attr)
            out[attr] = value if isinstance(value, (int, str, bool, list)) else str(value)
    return out


protocol = mqtt.MQTTv5 if s['version'] == 5 else mqtt.MQTTv311
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.get('clientId', ''), protocol=protocol, transport=s['transport'])
if s['transport'] == 'websockets':
    client.ws_set_options(path='/mqtt')
client.username_pw_set('paho', s['password'])


def on_connect(c, userdata, flags, rc, properties):
    emit(event='connack', reason=code(rc), sessionPresent=bool(flags.session_present), properties=props(properties))
    if code(rc) >= 0x80:
        done.set()
        subscribed.set()
        return
    if s.get('subscribe'):
        c.subscribe([(topic, qos) for topic, qos in s['subscribe']])
    else:
        subscribed.set()


def on_subscribe(c, userdata, mid, rcs, properties):
    emit(event='suback', mid=mid, reasons=[code(r) for r in rcs])
    subscribed.set()


def on_publish(c, userdata, mid, rc, properties):
    emit(event='puback', mid=mid, reason=code(rc))
    acks.append(mid)
    check_done()


def on_message(c, userdata, msg):
    emit(event='message', topic=msg.topic, payload=msg.payload.decode('utf-8', 'replace'), qos=msg.qos)
    messages.append(msg)
    check_done()


def on_disconnect(c, userdata, flags, rc, properties):
    emit(event='disconnect', reason=code(rc))
    done.set()


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_publish = on_publish
client.on_message = on_message
client.on_disconnect = on_disconnect
client.connect('127.0.0.1', s['port'], keepalive=60)
client.loop_start()
deadline = time.time() + s.get('timeoutS', 20)
if subscribed.wait(max(0, deadline - time.time())) and not done.is_set():
    for topic, payload, qos in s.get('publish', []):
        client.publish(topic, payload, qos)
    if s.get('expect', 0) > 0 or wanted_acks > 0:
        if not done.wait(max(0, deadline - time.time())):
            emit(event='timeout')
    else:
        time.sleep(0.5)
else:
    emit(event='timeout')
client.disconnect()
time.sleep(0.2)
client.loop_stop()
