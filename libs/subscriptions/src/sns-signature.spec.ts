import { generateKeyPairSync, sign } from 'node:crypto';
import { selfSignedCertificate } from '../../../test/support/sns.js';
import { DEFAULT_SNS_ORIGIN_PATTERN } from '#config/config.js';
import {
  SnsCertificateUnavailableError,
  SnsMessageVerifier,
  SnsSignatureError,
  checkSnsSignature,
  snsStringToSign,
  trustedSnsUrl,
} from './sns-signature.js';

const NOTIFICATION = {
  Type: 'Notification',
  MessageId: '22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324',
  TopicArn: 'arn:aws:sns:us-west-2:123456789012:MyTopic',
  Subject: 'My First Message',
  Message: 'Hello world!\nSecond line',
  Timestamp: '2012-05-02T00:54:06.655Z',
};

const CONFIRMATION = {
  Type: 'SubscriptionConfirmation',
  MessageId: '165545c9-2a5c-472c-8df2-7ff2be2b3b1b',
  Token:
    '2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736',
  TopicArn: 'arn:aws:sns:us-west-2:123456789012:MyTopic',
  Message: 'You have chosen to subscribe to the topic arn:aws:sns:us-west-2:123456789012:MyTopic.',
  SubscribeURL: 'https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=y',
  Timestamp: '2012-04-26T20:45:04.751Z',
};

describe('SNS string to sign', () => {
  it('lists the Notification fields in byte order, Subject only when present', () => {
    expect(snsStringToSign(NOTIFICATION)).toBe(
      'Message\nHello world!\nSecond line\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\nSubject\nMy First Message\n' +
        'Timestamp\n2012-05-02T00:54:06.655Z\nTopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n',
    );
    const { Subject: _subject, ...noSubject } = NOTIFICATION;
    expect(snsStringToSign(noSubject)).not.toContain('Subject');
  });

  it('lists SubscribeURL and Token for the confirmation messages', () => {
    for (const Type of ['SubscriptionConfirmation', 'UnsubscribeConfirmation']) {
      expect(snsStringToSign({ ...CONFIRMATION, Type })).toBe(
        `Message\n${CONFIRMATION.Message}\nMessageId\n${CONFIRMATION.MessageId}\nSubscribeURL\n${CONFIRMATION.SubscribeURL}\n` +
          `Timestamp\n${CONFIRMATION.Timestamp}\nToken\n${CONFIRMATION.Token}\nTopicArn\n${CONFIRMATION.TopicArn}\nType\n${Type}\n`,
      );
    }
  });

  it('has none for an unknown type or a missing field', () => {
    expect(snsStringToSign({ ...NOTIFICATION, Type: 'Other' })).toBeNull();
    const { Token: _token, ...noToken } = CONFIRMATION;
    expect(snsStringToSign(noToken)).toBeNull();
    expect(snsStringToSign({ ...NOTIFICATION, Message: { not: 'a string' } })).toBeNull();
  });
});

describe('SNS signatures', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signed = (m: Record<string, string>, version: '1' | '2') => ({
    ...m,
    SignatureVersion: version,
    Signature: sign(version === '1' ? 'sha1' : 'sha256', Buffer.from(snsStringToSign(m)!), privateKey).toString(
      'base64',
    ),
  });

  it('accepts SignatureVersion 1 (SHA1) and 2 (SHA256)', () => {
    expect(() => checkSnsSignature(signed(NOTIFICATION, '1'), publicKey)).not.toThrow();
    expect(() => checkSnsSignature(signed(NOTIFICATION, '2'), publicKey)).not.toThrow();
    expect(() => checkSnsSignature(signed(CONFIRMATION, '2'), publicKey)).not.toThrow();
  });

  it('refuses a changed field, a version mix-up, another key, junk', () => {
    const good = signed(NOTIFICATION, '2');
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    for (const bad of [
      { ...good, Message: 'Hello world?' },
      { ...good, TopicArn: 'arn:aws:sns:us-west-2:123456789012:Other' },
      { ...good, SignatureVersion: '1' },
      { ...good, SignatureVersion: '3' },
      { ...good, Signature: 'not base64!' },
      { ...good, Signature: undefined },
      { ...good, Type: 'SubscriptionConfirmation' },
    ]) {
      expect(() => checkSnsSignature(bad, publicKey)).toThrow(SnsSignatureError);
    }
    expect(() => checkSnsSignature(good, other)).toThrow(SnsSignatureError);
  });
});

describe('trusted SNS URLs (the production default)', () => {
  const re = new RegExp(DEFAULT_SNS_ORIGIN_PATTERN);
  it.each([
    'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem',
    'https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem',
    'https://SNS.eu-west-1.AMAZONAWS.com/x.pem',
  ])('trusts %s', (url) => expect(trustedSnsUrl(url, re)).not.toBeNull());
  it.each([
    'http://sns.us-east-1.amazonaws.com/x.pem',
    'https://sns.us-east-1.amazonaws.com:8443/x.pem',
    'https://sns.us-east-1.amazonaws.com.evil.example/x.pem',
    'https://evilsns.us-east-1.amazonaws.com/x.pem',
    'https://sns.us-east-1.amazonaws.com@evil.example/x.pem',
    'https://user:pw@sns.us-east-1.amazonaws.com/x.pem',
    'https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/x.pem',
    'https://evil.example/x.pem',
    'not a url',
  ])('does not trust %s', (url) => expect(trustedSnsUrl(url, re)).toBeNull());
});

describe('SnsMessageVerifier', () => {
  const cert = selfSignedCertificate('sns.test');
  const certUrl = 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem';
  const message = (extra: Record<string, string> = {}) => {
    const m = { ...NOTIFICATION, ...extra };
    return {
      ...m,
      SignatureVersion: '2',
      SigningCertURL: certUrl,
      Signature: sign('sha256', Buffer.from(snsStringToSign(m)!), cert.privateKey).toString('base64'),
    };
  };

  /** A stand-in for the network: counts fetches, answers with the certificate or fails. */
  function network(fail = false) {
    const calls: string[] = [];
    const impl = (async (input: string | URL | Request) => {
      calls.push(String(input));
      if (fail) throw new TypeError('fetch failed');
      return new Response(cert.pem, { status: 200 });
    }) as typeof fetch;
    return { calls, impl };
  }

  it('fetches the certificate once and verifies with it', async () => {
    const net = network();
    const v = new SnsMessageVerifier(new RegExp(DEFAULT_SNS_ORIGIN_PATTERN), net.impl);
    await v.verify(message());
    await v.verify(message({ MessageId: 'another' }));
    expect(net.calls).toEqual([certUrl]);
    await expect(v.verify({ ...message(), Message: 'forged' })).rejects.toThrow(SnsSignatureError);
  });

  it('never fetches from an untrusted origin', async () => {
    const net = network();
    const v = new SnsMessageVerifier(new RegExp(DEFAULT_SNS_ORIGIN_PATTERN), net.impl);
    await expect(v.verify({ ...message(), SigningCertURL: 'https://evil.example/cert.pem' })).rejects.toThrow(
      SnsSignatureError,
    );
    expect(net.calls).toEqual([]);
  });

  it('says "unavailable" when the certificate cannot be fetched, and tries again next time', async () => {
    const net = network(true);
    const v = new SnsMessageVerifier(new RegExp(DEFAULT_SNS_ORIGIN_PATTERN), net.impl);
    await expect(v.verify(message())).rejects.toThrow(SnsCertificateUnavailableError);
    await expect(v.verify(message())).rejects.toThrow(SnsCertificateUnavailableError);
    expect(net.calls).toHaveLength(2);
  });
});
