import {
  type AddressPolicy,
  checkAddress,
  checkUrl,
  classifyAddress,
  normaliseHost,
  parseIp,
} from './address-policy.js';

const STRICT: AddressPolicy = { allowPrivate: false, allowedPorts: [80, 443] };
const INTRANET: AddressPolicy = { allowPrivate: true, allowedPorts: [80, 443] };

describe('address policy (pure: nothing is resolved or connected)', () => {
  it('parses IPv4 and every IPv6 spelling to the same bytes', () => {
    expect(parseIp('127.0.0.1')?.bytes).toEqual(Uint8Array.from([127, 0, 0, 1]));
    const mapped = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
    for (const s of [
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '[::ffff:7f00:1]',
      '0:0:0:0:0:ffff:7f00:0001',
      '::FFFF:7F00:1',
    ]) {
      expect(parseIp(s)).toEqual({ family: 6, bytes: mapped });
    }
    expect(parseIp('fe80::1%eth0')?.bytes[0]).toBe(0xfe);
    for (const s of ['127.1', '2130706433', '0x7f.1', '0177.0.0.1', 'localhost', '1.2.3.256', ':::1', '']) {
      expect(parseIp(s)).toBeNull();
    }
  });

  it.each([
    // public
    ['93.184.215.14', 'public'],
    ['8.8.8.8', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['::ffff:8.8.8.8', 'public'],
    ['64:ff9b::808:808', 'public'], // NAT64 of 8.8.8.8
    ['2002:808:808::1', 'public'], // 6to4 of 8.8.8.8
    // loopback
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    // private
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['100.127.255.255', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456:789a::1', 'private'],
    ['fec0::1', 'private'],
    ['::ffff:10.1.2.3', 'private'],
    // link-local
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    // metadata
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['fd00:ec2:0:0:0:0:0:254', 'metadata'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:a9fe:a9fe', 'metadata'],
    // unspecified, multicast, broadcast, reserved
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['192.0.0.8', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['198.51.100.7', 'reserved'],
    ['203.0.113.9', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['2001:db8::1', 'reserved'],
    ['3fff::1', 'reserved'],
    ['100::1', 'reserved'],
    // IPv4-compatible, and translations of non-public IPv4 addresses
    ['::127.0.0.1', 'reserved'],
    ['::7f00:1', 'reserved'],
    ['::8.8.8.8', 'reserved'],
    ['64:ff9b::7f00:1', 'reserved'], // NAT64 of 127.0.0.1
    ['64:ff9b::a9fe:a9fe', 'reserved'], // NAT64 of 169.254.169.254
    ['64:ff9b::10.0.0.1', 'reserved'],
    ['64:ff9b:1::a00:1', 'reserved'], // local-use NAT64
    ['::ffff:0:7f00:1', 'reserved'], // SIIT of 127.0.0.1
    ['2002:7f00:1::1', 'reserved'], // 6to4 of 127.0.0.1
    ['2002:c0a8:101::1', 'reserved'], // 6to4 of 192.168.1.1
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', 'reserved'], // Teredo, client 127.0.0.1
  ])('%s is %s', (ip, cls) => {
    expect(classifyAddress(ip)).toBe(cls);
  });

  it('refuses every non-public address without allowPrivate, with a message that names only the rule', () => {
    for (const ip of ['127.0.0.1', '::1', '10.0.0.1', '192.168.0.10', '169.254.0.5', 'fe80::1', 'fd00::1', '0.0.0.0']) {
      expect(checkAddress(ip, STRICT)).toEqual({
        reason: 'address',
        message: 'the feed address is not allowed (private or reserved network)',
      });
    }
    expect(checkAddress('93.184.215.14', STRICT)).toBeNull();
    expect(checkAddress('not an ip', STRICT)?.reason).toBe('address');
  });

  it('allowPrivate opens loopback, private and link-local, never metadata nor reserved ranges', () => {
    for (const ip of [
      '127.0.0.1',
      '::1',
      '::ffff:127.0.0.1',
      '10.0.0.1',
      '100.64.1.1',
      '169.254.0.5',
      'fe80::1',
      'fd00::1',
    ]) {
      expect(checkAddress(ip, INTRANET)).toBeNull();
    }
    for (const ip of ['169.254.169.254', '::ffff:169.254.169.254', 'fd00:ec2::254', '100.100.100.200']) {
      expect(checkAddress(ip, INTRANET)).toEqual({
        reason: 'metadata',
        message: 'the feed address is not allowed (cloud metadata service)',
      });
    }
    for (const ip of ['0.0.0.0', '::', '224.0.0.1', '255.255.255.255', '64:ff9b::a9fe:a9fe', '::127.0.0.1']) {
      expect(checkAddress(ip, INTRANET)?.reason).toBe('address');
    }
  });

  describe('checkUrl', () => {
    const refusal = (url: string, policy = STRICT) => checkUrl(new URL(url), policy);

    it('judges legacy IPv4 spellings after new URL() has normalised them', () => {
      for (const url of [
        'http://127.1/feed',
        'http://2130706433/feed',
        'http://0x7f.1/feed',
        'http://0177.0.0.1/feed',
        'http://0x7f000001/feed',
        'http://127.0.0.1./feed',
        'http://[::ffff:7f00:1]/feed',
        'http://[::ffff:127.0.0.1]/feed',
        'http://[::1]/feed',
        'http://0/feed',
        'http://10.1/feed',
        'http://%31%32%37.0.0.1/feed', // percent-encoded host
        'http://１２７.０.０.１/feed', // full-width digits, IDNA-mapped
      ]) {
        expect({ url, host: new URL(url).hostname, why: refusal(url)?.reason }).toMatchObject({ url, why: 'address' });
      }
      expect(normaliseHost(new URL('http://0x7f.1/').hostname)).toBe('127.0.0.1');
    });

    it('refuses metadata hosts by name and by address, even with allowPrivate', () => {
      for (const url of [
        'http://169.254.169.254/latest/meta-data/',
        'http://2852039166/latest/meta-data/', // 169.254.169.254 as one number
        'http://0xa9.0xfe.0xa9.0xfe/',
        'http://[fd00:ec2::254]/',
        'http://metadata.google.internal/computeMetadata/v1/',
        'http://METADATA.Google.Internal./computeMetadata/v1/',
        'http://metadata/computeMetadata/v1/',
        'https://instance-data/latest/',
        'http://100.100.100.200/latest/meta-data/',
      ]) {
        expect({ url, why: refusal(url, INTRANET)?.reason }).toEqual({ url, why: 'metadata' });
      }
    });

    it('refuses other schemes, credentials and ports outside the list; names pass to the resolver', () => {
      expect(refusal('ftp://example.com/feed')?.message).toBe('the feed address is not allowed (only http and https)');
      expect(refusal('file:///etc/passwd')?.reason).toBe('scheme');
      expect(refusal('gopher://example.com:6379/_INFO')?.reason).toBe('scheme');
      expect(refusal('http://user:pw@example.com/feed')?.reason).toBe('credentials');
      expect(refusal('http://example.com:6379/feed')?.message).toBe(
        'the feed address is not allowed (port 6379; allowed: 80, 443)',
      );
      expect(refusal('https://example.com:5432/')?.reason).toBe('port');
      expect(refusal('http://example.com:443/feed')).toBeNull();
      expect(refusal('https://example.com/feed')).toBeNull();
      expect(refusal('http://example.com:8080/feed', { allowPrivate: false, allowedPorts: 'any' })).toBeNull();
      expect(refusal('http://127.0.0.1:3000/', { allowPrivate: true, allowedPorts: 'any' })).toBeNull();
      // A name is only judged once resolved (see safe-fetch): localhost is not refused here.
      expect(refusal('http://localhost/feed')).toBeNull();
    });
  });
});
