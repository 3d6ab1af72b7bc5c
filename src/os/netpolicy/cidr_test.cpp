// Pure logic: parsing allowlist entries and turning them into trie keys.
#include "os/netpolicy/cidr.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace hv::os::netpolicy {
namespace {

TEST(NetPolicyCidrTest, ParsesAndCanonicalisesPrefixes) {
  struct Row {
    const char* text;
    const char* canonical;  // nullptr = rejected
  };
  const Row rows[] = {
      {"10.0.0.0/8", "10.0.0.0/8"},
      {"10.1.2.3/8", "10.0.0.0/8"},
      {"127.0.0.1", "127.0.0.1/32"},
      {"0.0.0.0/0", "0.0.0.0/0"},
      {"192.168.1.129/25", "192.168.1.128/25"},
      {"::1", "::1/128"},
      {"2001:db8::1/32", "2001:db8::/32"},
      {"::ffff:127.0.0.1/104", "::ffff:127.0.0.0/104"},
      {"::/0", "::/0"},
      {"10.0.0.0/33", nullptr},
      {"::/129", nullptr},
      {"10.0.0.0/", nullptr},
      {"10.0.0.0/x", nullptr},
      {"example.com", nullptr},
      {"", nullptr},
      {"1.2.3", nullptr},
  };
  for (const Row& row : rows) {
    Result<Cidr> c = Cidr::parse(row.text);
    if (row.canonical == nullptr) {
      EXPECT_FALSE(c) << row.text;
      if (!c) {
        EXPECT_EQ(c.error().code, Errc::kInvalidArgument);
      }
    } else {
      ASSERT_TRUE(c) << row.text << ": " << c.error().message;
      EXPECT_EQ(c->toString(), row.canonical) << row.text;
    }
  }
}

TEST(NetPolicyCidrTest, ParsesAllowEntries) {
  struct Row {
    const char* text;
    const char* prefix;  // nullptr = rejected
    uint16_t port;
  };
  const Row rows[] = {
      {"10.0.0.0/8:443", "10.0.0.0/8", 443},
      {"127.0.0.1:5432", "127.0.0.1/32", 5432},
      {"[::1]:8080", "::1/128", 8080},
      {"[2001:db8::/32]:0", "2001:db8::/32", 0},
      {"1.2.3.4:0", "1.2.3.4/32", 0},
      {"1.2.3.4", nullptr, 0},
      {"1.2.3.4:65536", nullptr, 0},
      {"1.2.3.4:-1", nullptr, 0},
      {"::1:80", nullptr, 0},
      {"[::1]80", nullptr, 0},
      {"db.example.com:5432", nullptr, 0},
  };
  for (const Row& row : rows) {
    Result<AllowEntry> e = parseAllowEntry(row.text);
    if (row.prefix == nullptr) {
      EXPECT_FALSE(e) << row.text;
    } else {
      ASSERT_TRUE(e) << row.text << ": " << e.error().message;
      EXPECT_EQ(e->prefix.toString(), row.prefix) << row.text;
      EXPECT_EQ(e->port, row.port) << row.text;
      EXPECT_EQ(e->protocol, 0) << row.text;
    }
  }
}

hv_allow_key keyOf(const char* cidr, uint16_t port = 0, uint8_t protocol = 0) {
  Result<Cidr> c = Cidr::parse(cidr);
  EXPECT_TRUE(c) << cidr;
  return allowKey(42, AllowEntry{c.value_or(Cidr{}), port, protocol});
}

uint32_t v4(const char* text) {
  uint32_t a = 0;
  ::inet_pton(AF_INET, text, &a);
  return a;
}

TEST(NetPolicyCidrTest, KeysSeparateLoopbackFromTheWorld) {
  struct Row {
    const char* cidr;
    uint8_t family;
    uint32_t prefixBits;  // of the address
  };
  const Row rows[] = {
      {"10.0.0.0/8", HV_FAMILY_V4, 8},
      {"0.0.0.0/0", HV_FAMILY_V4, 0},        // the world, not the host
      {"127.0.0.0/8", HV_FAMILY_LOOP4, 8},
      {"127.0.0.1", HV_FAMILY_LOOP4, 32},
      {"126.0.0.0/7", HV_FAMILY_V4, 7},      // wider than loopback
      {"::1", HV_FAMILY_LOOP6, 128},
      {"::/0", HV_FAMILY_V6, 0},
      {"::/127", HV_FAMILY_V6, 127},         // holds ::1 and more
      {"2001:db8::/32", HV_FAMILY_V6, 32},
      {"::ffff:10.0.0.0/104", HV_FAMILY_V4, 8},     // v4-mapped means IPv4
      {"::ffff:127.0.0.1", HV_FAMILY_LOOP4, 32},
      {"::ffff:0:0/96", HV_FAMILY_V4, 0},
  };
  for (const Row& row : rows) {
    hv_allow_key key = keyOf(row.cidr);
    EXPECT_EQ(key.family, row.family) << row.cidr;
    EXPECT_EQ(key.prefixlen, HV_ALLOW_FIXED_BITS + row.prefixBits) << row.cidr;
    EXPECT_EQ(key.cgroup_id, 42u);
  }
  EXPECT_EQ(keyOf("::ffff:10.1.2.3").addr[0], v4("10.1.2.3"));
  EXPECT_EQ(keyOf("::ffff:10.1.2.3").addr[3], 0u);
  EXPECT_EQ(keyOf("10.1.2.3", 443, 6).port, 443);
  EXPECT_EQ(keyOf("10.1.2.3", 443, 6).protocol, 6);
}

}  // namespace
}  // namespace hv::os::netpolicy
