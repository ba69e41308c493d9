#!/usr/bin/env python3
"""Produces test records with Confluent's own serializers (confluent-kafka's
AvroSerializer, ProtobufSerializer, JSONSerializer: not freshet's code)
through a schema registry, and writes the reference a view must reach.

  sr_produce.py --brokers B --registry URL --topic T --out REF.json CASE [--hold FILE]

CASE:
  avro      Avro keys and values; the value schema gains an optional field
            mid-stream (v1, then v2); tombstones. With --hold FILE the v2
            records are serialized (their schema registered) but written to
            FILE instead of produced (see `raw`).
  protobuf  a .proto with two top-level messages; records of the second
            (message index [1]) with a nested message and a oneof, a
            Timestamp and an Int64Value.
  protobuf_refs  a .proto that imports another (registered as a schema
            reference): Payment { Money total }.
  json_sr   JSON Schema.
  poison    good Avro records around a wrong magic byte, an unknown schema
            id and a truncated payload.
  raw       produces the records held in --hold FILE, as they are.

The reference (REF.json): {"rows": [[key, column values as Postgres prints
them, ...], ...] sorted by key, "produced": N}.
"""
import argparse
import base64
import datetime
import decimal
import json
import random
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

ORDER_V1 = {
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [{"name": "id", "type": "string"}]}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]}},
    ],
}
ORDER_V2 = json.loads(json.dumps(ORDER_V1))
ORDER_V2["fields"].append({"name": "note", "type": ["null", "string"], "default": None})


def avro_order(rng, i, v2):
    at = EPOCH + datetime.timedelta(milliseconds=1700000000000 + rng.randrange(10**9))
    value = {
        "id": i,
        "customer": {"id": "c%d" % rng.randrange(7)},
        "amount": decimal.Decimal(rng.randrange(-50000, 500000)).scaleb(-2),
        "day": datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randrange(400)),
        "at": at,
        "status": rng.choice(["NEW", "PAID", "SHIPPED"]),
    }
    if v2:
        value["note"] = None if rng.random() < 0.3 else "note %d \u00e9" % i
    row = [str(value["id"]), value["customer"]["id"], str(value["amount"]), value["day"].isoformat(),
           str(int((at - EPOCH) / datetime.timedelta(milliseconds=1))), value["status"],
           value.get("note") if v2 else None]
    return value, row


class Out:
    def __init__(self, args):
        self.producer = Producer({"bootstrap.servers": args.brokers, "linger.ms": 5})
        self.topic = args.topic
        self.rows = {}
        self.produced = 0
        self.held = []
        self.hold_file = args.hold

    def send(self, key, value, hold=False):
        if hold:
            self.held.append([None if key is None else base64.b64encode(key).decode(),
                              None if value is None else base64.b64encode(value).decode()])
            return
        self.producer.produce(self.topic, key=key, value=value)
        self.produced += 1

    def finish(self, out_path):
        self.producer.flush(30)
        if self.hold_file:
            with open(self.hold_file, "w") as f:
                json.dump(self.held, f)
        rows = sorted([k] + r for k, r in self.rows.items() if r is not None)
        with open(out_path, "w") as f:
            json.dump({"rows": rows, "produced": self.produced, "held": len(self.held)}, f)


def case_avro(args, registry, out):
    from confluent_kafka.schema_registry.avro import AvroSerializer
    key_ser = AvroSerializer(registry, '"string"')
    v1 = AvroSerializer(registry, json.dumps(ORDER_V1))
    v2 = AvroSerializer(registry, json.dumps(ORDER_V2))
    rng = random.Random(11)
    kctx = SerializationContext(args.topic, MessageField.KEY)
    vctx = SerializationContext(args.topic, MessageField.VALUE)
    for i in range(300):
        newer = i >= 150
        key = "o-%d" % rng.randrange(40)
        if rng.random() < 0.08:
            out.send(key_ser(key, kctx), None, hold=newer and args.hold)
            out.rows[key] = None
            continue
        value, row = avro_order(rng, i, newer)
        out.send(key_ser(key, kctx), (v2 if newer else v1)(value, vctx), hold=newer and args.hold)
        out.rows[key] = row


def case_poison(args, registry, out):
    from confluent_kafka.schema_registry.avro import AvroSerializer
    ser = AvroSerializer(registry, json.dumps(ORDER_V1))
    vctx = SerializationContext(args.topic, MessageField.VALUE)
    rng = random.Random(5)
    good = []
    for i in range(6):
        value, row = avro_order(rng, i, False)
        good.append((("p-%d" % i).encode(), ser(value, vctx), row))
    bad = [
        b'{"id": 1}',                                       # wrong magic byte 0x7b
        b"\x00" + (987654).to_bytes(4, "big") + good[0][1][5:],  # an id the registry has not
        good[1][1][:-3],                                     # truncated
    ]
    for i, (key, value, row) in enumerate(good):
        out.send(key, value)
        out.rows[key.decode()] = row
        if i < len(bad):
            out.send(("bad-%d" % i).encode(), bad[i])


def case_protobuf(args, registry, out):
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from google.protobuf import timestamp_pb2, wrappers_pb2  # noqa: F401 (into the default pool)
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="shop_order.proto", package="shop", syntax="proto3",
                                            dependency=["google/protobuf/timestamp.proto",
                                                        "google/protobuf/wrappers.proto"])
    env = fdp.message_type.add(name="Envelope")
    env.field.add(name="id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    order = fdp.message_type.add(name="Order")
    line = order.nested_type.add(name="Line")
    line.field.add(name="sku", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    line.field.add(name="qty", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    order.oneof_decl.add(name="payment")
    order.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    order.field.add(name="first", number=2, type=F.TYPE_MESSAGE, type_name=".shop.Order.Line", label=F.LABEL_OPTIONAL)
    order.field.add(name="lines", number=3, type=F.TYPE_MESSAGE, type_name=".shop.Order.Line", label=F.LABEL_REPEATED)
    order.field.add(name="card", number=4, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, oneof_index=0)
    order.field.add(name="voucher", number=5, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL, oneof_index=0)
    order.field.add(name="at", number=6, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp",
                    label=F.LABEL_OPTIONAL)
    order.field.add(name="discount", number=7, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Int64Value",
                    label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()
    pool.Add(fdp)
    Order = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))
    ser = ProtobufSerializer(Order, registry, {"use.deprecated.format": False})
    keys = StringSerializer()
    vctx = SerializationContext(args.topic, MessageField.VALUE)
    rng = random.Random(3)
    for i in range(200):
        key = "p-%d" % rng.randrange(30)
        m = Order(id=i)
        m.first.sku = "sku-%d" % rng.randrange(9)
        m.first.qty = rng.randrange(1, 5)
        for _ in range(rng.randrange(3)):
            m.lines.add(sku="x", qty=1)
        card = voucher = None
        if rng.random() < 0.5:
            card = m.card = "card-%d" % rng.randrange(100)
        else:
            voucher = m.voucher = rng.randrange(1, 10**12)
        micros = 1700000000000000 + rng.randrange(10**12)
        m.at.seconds, m.at.nanos = micros // 10**6, (micros % 10**6) * 1000
        discount = None
        if rng.random() < 0.6:
            discount = m.discount.value = rng.randrange(0, 50)
        out.send(keys(key), ser(m, vctx))
        out.rows[key] = [str(i), m.first.sku, str(m.first.qty), str(len(m.lines)), card,
                         None if voucher is None else str(voucher), str(micros),
                         None if discount is None else str(discount)]


def case_protobuf_refs(args, registry, out):
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    F = descriptor_pb2.FieldDescriptorProto
    common = descriptor_pb2.FileDescriptorProto(name="shop/money.proto", package="shop.common", syntax="proto3")
    money = common.message_type.add(name="Money")
    money.field.add(name="currency", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    money.field.add(name="cents", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    main = descriptor_pb2.FileDescriptorProto(name="shop/payment.proto", package="shop", syntax="proto3",
                                             dependency=["shop/money.proto"])
    payment = main.message_type.add(name="Payment")
    payment.field.add(name="id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    payment.field.add(name="total", number=2, type=F.TYPE_MESSAGE, type_name=".shop.common.Money",
                      label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()
    pool.Add(common)
    pool.Add(main)
    Payment = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Payment"))
    ser = ProtobufSerializer(Payment, registry, {"use.deprecated.format": False})
    keys = StringSerializer()
    vctx = SerializationContext(args.topic, MessageField.VALUE)
    rng = random.Random(4)
    for i in range(60):
        key = "pay-%d" % rng.randrange(20)
        m = Payment(id="pay-%d" % i)
        m.total.currency = rng.choice(["EUR", "USD"])
        m.total.cents = rng.randrange(1, 10**6)
        out.send(keys(key), ser(m, vctx))
        out.rows[key] = [m.id, m.total.currency, str(m.total.cents)]


def case_json_sr(args, registry, out):
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "title": "Payment", "type": "object",
              "properties": {"id": {"type": "integer"}, "customer": {"type": "object",
                                                                      "properties": {"id": {"type": "string"}}},
                             "amount": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
              "required": ["id", "customer", "amount"]}
    ser = JSONSerializer(json.dumps(schema), registry)
    keys = StringSerializer()
    vctx = SerializationContext(args.topic, MessageField.VALUE)
    rng = random.Random(9)
    for i in range(150):
        key = "j-%d" % rng.randrange(25)
        value = {"id": i, "customer": {"id": "c%d" % rng.randrange(5)},
                 "amount": str(decimal.Decimal(rng.randrange(100000)).scaleb(-2)),
                 "tags": ["t%d" % rng.randrange(3)]}
        out.send(keys(key), ser(value, vctx))
        out.rows[key] = [str(i), value["customer"]["id"], value["amount"]]


def case_raw(args, out):
    with open(args.hold) as f:
        held = json.load(f)
    for key, value in held:
        out.producer.produce(args.topic, key=None if key is None else base64.b64decode(key),
                             value=None if value is None else base64.b64decode(value))
        out.produced += 1
    out.hold_file = None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=["avro", "protobuf", "protobuf_refs", "json_sr", "poison", "raw"])
    p.add_argument("--brokers", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--hold")
    args = p.parse_args()
    out = Out(args)
    if args.case == "raw":
        case_raw(args, out)
    else:
        registry = SchemaRegistryClient({"url": args.registry})
        globals()["case_" + args.case](args, registry, out)
    out.finish(args.out)
    print(json.dumps({"produced": out.produced, "held": len(out.held)}))


if __name__ == "__main__":
    sys.exit(main())
